"""The price book (CONTRACT.md section 3): the customers, meters, product items, rates, rate
tiers and commitments of the catalog CSVs, which say what is billed to whom and at what price.
It is read, validated and loaded here; the pricing itself lives in dbt (and, independently, in
``billing.pricer``).

Importers use the modules directly, one room each:
- ``problems``: ``Problem``, one problem located by file, row and field, shared by every check.
- ``read``: the files and their columns (``FILES``), reading them as text (``load_catalog``
  -> ``Catalog`` of ``Row``), and the ISO 4217 minor units (``read_currencies``).
- ``model``: the typed records (``Customer`` ... ``Commitment``) and ``parse``, which turns the
  text into exact values and reports every bad cell; the text forms of those values.
- ``rules``: ``validate``, every period-independent problem (duplicates, references, filters,
  overlaps, tier tables).
- ``periods``: the checks against the warehouse: what ingest needs (``lookup_problems``,
  ``ingest_lookup``) and the period being billed (``period_problems``).
- ``overflow``: arithmetic the build could not do in DECIMAL(38,12), named before it runs.
- ``load``: ``write_catalog`` into the ``catalog.*`` tables (``CATALOG_DDL``).
- ``summary``: the overview ``meterline catalog`` prints.
- ``sql/``: the queries of ``periods`` and ``overflow`` longer than a few lines.

The package depends only on ``orchestration.lib``.
"""
