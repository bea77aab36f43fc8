{#- Several columns that are never NULL, in one scan of the model (one test instead of a
    `not_null` per column: every test is a query, a dbt node and a Dagster asset check). A
    failing row shows which of the columns are NULL. -#}
{% test not_null_columns(model, columns) %}
    select {% for column in columns %}{{ column }} is null as {{ column }}_is_null{% if not loop.last %}, {% endif %}{% endfor %}
    from {{ model }}
    where {% for column in columns %}{{ column }} is null{% if not loop.last %} or {% endif %}{% endfor %}
{% endtest %}
