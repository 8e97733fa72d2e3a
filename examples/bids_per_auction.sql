-- Bids per auction in 10-second event-time windows, over the bundled sample data, with a
-- user-defined aggregate (the exact median, a Wasm component built from operators/median).
-- Run (see the README's quick start):
--   cargo build --release --target wasm32-wasip2 -p laminar-op-median
--   cargo run --release -- run examples/bids_per_auction.sql
CREATE AGGREGATE median FROM 'target/wasm32-wasip2/release/laminar_op_median.wasm';

CREATE SOURCE bids (
    ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE, channel VARCHAR,
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (connector = 'file', path = 'examples/data/bids.csv', format = 'csv');

SELECT auction,
       TUMBLE_START(ts, INTERVAL '10' SECOND) AS window_start,
       TUMBLE_END(ts, INTERVAL '10' SECOND)   AS window_end,
       COUNT(*) AS bids,
       ROUND(AVG(price), 2) AS avg_price,
       median(price) AS median_price,
       MAX(price) AS max_price
FROM bids
WHERE channel <> 'test'
GROUP BY auction, TUMBLE(ts, INTERVAL '10' SECOND)
HAVING COUNT(*) >= 3
EMIT ON WINDOW CLOSE;
