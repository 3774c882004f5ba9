-- wrk script: POST /predictions with the body read from the file named by
-- $COG_BENCH_BODY (one request built once per thread, reused for every call);
-- with $COG_BENCH_ACCEPT, that Accept header (text/event-stream: a stream of
-- server-sent events, read to its end as a chunked response).
local path = os.getenv("COG_BENCH_BODY")
local file = assert(io.open(path, "rb"), "cannot open COG_BENCH_BODY " .. tostring(path))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
local accept = os.getenv("COG_BENCH_ACCEPT")
if accept and accept ~= "" then
  wrk.headers["Accept"] = accept
end
