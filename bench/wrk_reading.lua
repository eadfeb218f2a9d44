-- wrk script: POST /predict with one new wire-format reading per request, from SENSORS
-- simulated pumps, one reading a millisecond apart from BASE_EPOCH (env), so every reading is
-- new to its sensor's history. With PER_REQUEST (env) above 1, a request is a JSON list of that
-- many such readings (a gateway's batch). done() prints one JSON line the bench parses.
local sensors = tonumber(os.getenv("SENSORS") or "64")
local per_request = tonumber(os.getenv("PER_REQUEST") or "1")
local base = tonumber(os.getenv("BASE_EPOCH"))
local i = 0

wrk.method = "POST"
wrk.path = "/predict"
wrk.headers["Content-Type"] = "application/json"

local function reading()
  i = i + 1
  local t = base + i / 1000
  local ts = os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t)) .. string.format(".%03dZ", math.floor((t % 1) * 1000))
  local body = string.format(
    '{"sensor_id":"pump-%03d","ts":"%s","seq":%d,"values":{"Accelerometer1RMS":%.4f,' ..
    '"Accelerometer2RMS":%.4f,"Current":%.4f,"Pressure":%.4f,"Temperature":%.3f,' ..
    '"Thermocouple":%.3f,"Voltage":%.3f,"Volume Flow RateRMS":%.3f}}',
    i % sensors, ts, i,
    0.21 + math.random() * 0.01, 0.27 + math.random() * 0.01, 2.4 + math.random() * 0.2,
    0.11 + math.random() * 0.01, 89.5 + math.random(), 28.5 + math.random(),
    228.6 + math.random() * 2, 125.2 + math.random() * 2)
  return body
end

request = function()
  if per_request == 1 then
    return wrk.format(nil, nil, nil, reading())
  end
  local parts = {}
  for k = 1, per_request do
    parts[k] = reading()
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(parts, ",") .. "]")
end

done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
