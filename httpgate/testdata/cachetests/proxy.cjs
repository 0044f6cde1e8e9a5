// Preloaded with node --require: sends every http.request through the
// forward proxy at HTTPGATE_PROXY (host:port), in absolute form, with the
// Host field of the URL. The suite's client (node-fetch 2) no longer reads
// HTTP_PROXY.
'use strict'
const http = require('http')

const proxy = process.env.HTTPGATE_PROXY
if (!proxy) throw new Error('HTTPGATE_PROXY is not set')
const sep = proxy.lastIndexOf(':')
const proxyHost = proxy.slice(0, sep)
const proxyPort = Number(proxy.slice(sep + 1))

const request = http.request
http.request = function (options, ...rest) {
  if (typeof options === 'string' || options instanceof URL) {
    throw new Error('proxy.cjs: only option objects are proxied')
  }
  const target = options.host || `${options.hostname}:${options.port}`
  const headers = Object.assign({}, options.headers)
  if (!Object.keys(headers).some(k => k.toLowerCase() === 'host')) headers.Host = target
  const proxied = Object.assign({}, options, {
    protocol: 'http:',
    host: proxyHost,
    hostname: proxyHost,
    port: proxyPort,
    path: `http://${target}${options.path || '/'}`,
    headers
  })
  return request.call(this, proxied, ...rest)
}
