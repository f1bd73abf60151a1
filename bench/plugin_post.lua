-- wrk script for bench/plugin_bench.sh: the same template.execute call, as Argo's agent sends it.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("QUARGO_BENCH_TOKEN")
local f = assert(io.open(os.getenv("QUARGO_BENCH_BODY"), "r"))
wrk.body = f:read("*a")
f:close()
