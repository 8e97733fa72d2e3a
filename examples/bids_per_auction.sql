-- Bids per auction in 10-second event-time windows, over the bundled sample data.
-- Run: cargo run --release -- run examples/bids_per_auction.sql
CREATE SOURCE bids (
    ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE, channel VARCHAR,
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (connector = 'file', path = 'examples/data/bids.csv', format = 'csv');

SELECT auction,
       TUMBLE_START(ts, INTERVAL '10' SECOND) AS window_start,
       TUMBLE_END(ts, INTERVAL '10' SECOND)   AS window_end,
       COUNT(*) AS bids,
       ROUND(AVG(price), 2) AS avg_price,
       MAX(price) AS max_price
FROM bids
WHERE channel <> 'test'
GROUP BY auction, TUMBLE(ts, INTERVAL '10' SECOND)
HAVING COUNT(*) >= 3
EMIT ON WINDOW CLOSE;
