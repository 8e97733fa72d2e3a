-- CLI throughput with a Wasm aggregate next to the native ones (the plugin is built by
-- `cargo build --release --target wasm32-wasip2 -p laminar-op-median`).
-- Data: ./target/release/laminar gen bids --rows 2000000 --rate 10000 --out target/bids-2m.csv
CREATE AGGREGATE median FROM 'target/wasm32-wasip2/release/laminar_op_median.wasm';
CREATE SOURCE bids (
    ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE, channel VARCHAR,
    WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH (connector = 'file', path = 'target/bids-2m.csv', format = 'csv');

SELECT auction, window_start, window_end,
       COUNT(*), SUM(price), AVG(price), median(price)
FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;
