{#- Every row satisfies `expression` (a SQL boolean over the model's columns); NULL fails. -#}
{% test expression_is_true(model, expression) %}
    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false)
{% endtest %}
