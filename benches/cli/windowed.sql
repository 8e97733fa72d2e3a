-- CLI throughput: the end-to-end bench's query over a CSV file, through the whole
-- `laminar run` process (decode, event time, window aggregate, CSV output).
-- Data: ./target/release/laminar gen bids --rows 2000000 --rate 10000 --out target/bids-2m.csv
CREATE SOURCE bids (
    ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE, channel VARCHAR,
    WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH (connector = 'file', path = 'target/bids-2m.csv', format = 'csv');

SELECT auction, window_start, window_end,
       COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price)
FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;
