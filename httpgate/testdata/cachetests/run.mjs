// Runs http-cache-tests against the forward proxy that proxy.cjs (loaded
// with --require) sends requests to: starts the suite's origin server on
// 127.0.0.1, runs every test that is not for browsers, and prints one JSON
// object: each test's id, kind (required, optimal, check) and result
// (pass, fail, setup_fail, dependency_fail, harness_fail), and the counts,
// to the file named by its first argument (the suite's server writes its
// warnings to standard output).
import fs from 'fs'
import http from 'http'
import fetch from 'node-fetch'
import { runTests, getResults } from 'http-cache-tests/client/runner.mjs'
import tests from 'http-cache-tests/tests/index.mjs'
import surrogate from 'http-cache-tests/tests/surrogate-control.mjs'
import handleConfig from 'http-cache-tests/server/handle-config.mjs'
import handleFile from 'http-cache-tests/server/handle-file.mjs'
import handleState from 'http-cache-tests/server/handle-state.mjs'
import handleTest from 'http-cache-tests/server/handle-test.mjs'

tests.push(surrogate)

const server = http.createServer((request, response) => {
  const url = new URL(request.url, 'http://127.0.0.1/')
  const segs = url.pathname.split('/')
  segs.shift()
  const dispatch = segs.shift()
  if (dispatch === 'config') handleConfig(segs, request, response)
  else if (dispatch === 'test') handleTest(segs, request, response)
  else if (dispatch === 'state') handleState(segs, request, response)
  else handleFile(url, request, response)
})
await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${server.address().port}`

await runTests(tests, fetch, false, base)
const raw = getResults()
server.close()
// The gateway keeps connections to the origin for reuse (90 seconds), and
// may hold one it dialed and never used: the node process would wait for
// them, or for the server's headersTimeout.
server.closeAllConnections()

const byId = new Map()
for (const suite of tests) {
  for (const test of suite.tests) {
    if (test.browser_only) continue
    byId.set(test.id, { suite: suite.id, test })
  }
}

// The suite's own classification (lib/display.mjs, which needs a browser),
// restated: a test whose dependencies did not pass is a dependency_fail.
const memo = new Map()
function result (id) {
  if (memo.has(id)) return memo.get(id)
  const { test } = byId.get(id)
  const r = raw[id]
  let out
  if (r === undefined) out = 'untested'
  else if ((test.depends_on || []).some(dep => result(dep) !== 'pass')) out = 'dependency_fail'
  else if (r === true) out = 'pass'
  else if (r[0] === 'Setup') out = 'setup_fail'
  else if (r[0] !== 'Assertion') out = 'harness_fail'
  else out = 'fail'
  memo.set(id, out)
  return out
}

const summary = {}
const results = {}
for (const [id, { suite, test }] of byId) {
  const kind = test.kind || 'required'
  const res = result(id)
  results[id] = { suite, kind, result: res }
  if (res !== 'pass' && raw[id] !== true && raw[id] !== undefined) results[id].detail = raw[id][1]
  summary[kind] = summary[kind] || { passed: 0, total: 0 }
  summary[kind].total++
  if (res === 'pass') summary[kind].passed++
}
fs.writeFileSync(process.argv[2], JSON.stringify({ suite: 'http-cache-tests@0.4.5', summary, results }, null, 1))
