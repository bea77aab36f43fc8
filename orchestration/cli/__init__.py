"""The `meterline` command, the top floor: the parser and entry point (`main`), the in-process
run engine (`engine`), one module per command (`bill`, `invoices`, `explain`, `demo`,
`commands` for the small ones) and the demo's event generator (`demo_events`)."""
