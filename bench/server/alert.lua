-- wrk script: POSTs Alertmanager v4 webhook payloads, each with its own
-- groupKey (so every request is a new delivery that must be stored durably).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  token = os.getenv("HOTFIX_BENCH_TOKEN") or ""
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end

local template = [[{"version":"4","groupKey":"{}:{alertname=\"BenchAlert\",instance=\"%s\"}","truncatedAlerts":0,"status":"firing","receiver":"hotfix","groupLabels":{"alertname":"BenchAlert"},"commonLabels":{"alertname":"BenchAlert","instance":"%s","severity":"warning"},"commonAnnotations":{"summary":"bench alert %s"},"externalURL":"http://alertmanager:9093","alerts":[{"status":"firing","labels":{"alertname":"BenchAlert","instance":"%s"},"annotations":{"summary":"bench alert %s"},"startsAt":"2026-11-27T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph","fingerprint":"%s"}]}]]

function request()
  counter = counter + 1
  local id = tid .. "-" .. counter .. "-" .. math.random(1, 1000000000)
  local body = string.format(template, id, id, id, id, id, id)
  return wrk.format(nil, "/api/v1/alerts/alertmanager", nil, body)
end
