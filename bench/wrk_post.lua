-- wrk script: POST /predictions with the body read from the file named by
-- $COG_BENCH_BODY (one request built once per thread, reused for every call).
local path = os.getenv("COG_BENCH_BODY")
local file = assert(io.open(path, "rb"), "cannot open COG_BENCH_BODY " .. tostring(path))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
