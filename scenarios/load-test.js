// k6 load test of the SmartScale demo app (k3s/demo-app), driven by the same load profiles
// the simulator replays (scenarios/*.json are k6 options files):
//
//   k6 run --config scenarios/flash-sale.json -e BASE_URL=http://demo-app.demo.svc scenarios/load-test.js
//
// Environment:
//   BASE_URL       demo app base URL (default http://localhost:8080)
//   CPU_MS         CPU milliseconds each request burns (/work?cpu_ms=N); default: the scenario
//                  file's smartscale.app.cpu_ms_per_request, else 10 (the simulator's default)
//   SCENARIO_FILE  scenario file to read cpu_ms_per_request from. k6 resolves a relative path
//                  against this script's directory, so "flash-sale.json" names
//                  scenarios/flash-sale.json. When set, its "scenarios" also become this
//                  script's, so --config may be left out.
//
// Thresholds (the SLO the simulator reports against): p95 latency below 500 ms and fewer
// than 1% failed requests.
import http from 'k6/http';
import { check } from 'k6';

const DEFAULT_CPU_MS = 10;

// readScenario loads the scenario file named by SCENARIO_FILE (init context only).
function readScenario(name) {
  if (!name) {
    return null;
  }
  const candidates = [name];
  const slash = name.lastIndexOf('/');
  if (slash >= 0 && !name.startsWith('/')) {
    candidates.push(name.slice(slash + 1)); // "scenarios/x.json" given from the repository root
  }
  let lastErr = null;
  for (const path of candidates) {
    try {
      return JSON.parse(open(path));
    } catch (err) {
      lastErr = err;
    }
  }
  throw new Error(`SCENARIO_FILE ${name}: ${lastErr}`);
}

function cpuMs(spec) {
  const raw = __ENV.CPU_MS;
  if (raw !== undefined && raw !== '') {
    const v = Number(raw);
    if (!Number.isFinite(v) || v < 0) {
      throw new Error(`CPU_MS must be a non-negative number, got ${raw}`);
    }
    return v;
  }
  const fromFile = spec && spec.smartscale && spec.smartscale.app && spec.smartscale.app.cpu_ms_per_request;
  if (typeof fromFile === 'number' && fromFile >= 0) {
    return fromFile;
  }
  return DEFAULT_CPU_MS;
}

const spec = readScenario(__ENV.SCENARIO_FILE);
const BASE_URL = (__ENV.BASE_URL || 'http://localhost:8080').replace(/\/+$/, '');
const CPU_MS = cpuMs(spec);
const WORK_URL = `${BASE_URL}/work?cpu_ms=${CPU_MS}`;

export const options = {
  thresholds: {
    http_req_duration: ['p(95)<500'],
    http_req_failed: ['rate<0.01'],
  },
};
if (spec && spec.scenarios) {
  options.scenarios = spec.scenarios;
}

export function setup() {
  const res = http.get(`${BASE_URL}/healthz`, { timeout: '10s' });
  if (res.status !== 200) {
    throw new Error(`demo app at ${BASE_URL} is not healthy: HTTP ${res.status}`);
  }
  console.log(`driving ${WORK_URL}`);
}

export default function () {
  const res = http.get(WORK_URL, { tags: { name: 'work' }, timeout: '10s' });
  check(res, { 'status is 200': (r) => r.status === 200 });
}
