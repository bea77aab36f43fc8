{#- The 17 columns of an invoice line in contract order (contract section 5), as a select list:
    the one list the published lines (stg_billing__published_invoice_lines), the drafts
    (int_invoice_lines_drafted) and the mart (fct_invoice_lines) select. With `typed=true` each
    typed column is cast to its contract type (`cast(amount as <money>) as amount`). -#}
{% macro invoice_line_columns(typed=false) -%}
    {%- set columns = [
        ('invoice_id', none),
        ('line_number', 'integer'),
        ('customer_id', none),
        ('billing_period_start', none),
        ('billing_period_end', none),
        ('usage_period_start', none),
        ('usage_period_end', none),
        ('line_type', none),
        ('product_item_id', none),
        ('meter_id', none),
        ('description', none),
        ('quantity', quantity_type()),
        ('unit_price', quantity_type()),
        ('tier', 'integer'),
        ('amount', money_type()),
        ('currency', none),
        ('rate_id', none),
    ] -%}
    {%- set selected = [] -%}
    {%- for name, type in columns -%}
        {%- if typed and type is not none -%}
            {%- do selected.append('cast(' ~ name ~ ' as ' ~ type ~ ') as ' ~ name) -%}
        {%- else -%}
            {%- do selected.append(name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ selected | join(',\n    ') }}
{%- endmacro %}
