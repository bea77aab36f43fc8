-- The five meter aggregations over the source rows (value, event_at, event_id, aggregation,
-- unique_value), one row per key columns and aggregation.
select {{ keys }}, aggregation, count(*) as event_count,
       case aggregation
           when 'sum' then cast(sum(value) filter (where aggregation = 'sum')
                                as decimal(38, 12))
           when 'count' then cast(count(*) as decimal(38, 12))
           when 'unique_count' then cast(count(distinct unique_value)
                                         as decimal(38, 12))
           when 'max' then cast(max(value) filter (where aggregation = 'max')
                                as decimal(38, 12))
           when 'latest' then cast(first(value order by event_at desc,
                                         event_id desc)
                                   filter (where aggregation = 'latest')
                                   as decimal(38, 12))
       end as quantity
from ({{ source }}) as source_rows
group by {{ keys }}, aggregation
