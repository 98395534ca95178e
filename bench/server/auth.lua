-- wrk script: a GET with the bench token (dashboard pages, API reads).
function init(args)
  local token = os.getenv("HOTFIX_BENCH_TOKEN") or ""
  wrk.headers["Authorization"] = "Bearer " .. token
end
