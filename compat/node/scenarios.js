'use strict'
// KafkaJS scenarios for the kbroker client compatibility matrix.
// Usage: node scenarios.js BOOTSTRAP SCENARIO... (one JSON line per scenario) | node scenarios.js --list
const crypto = require('crypto')
const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Module = require('@2l/kafkajs-lz4')
const zstd = require('@bokuweb/zstd-wasm')

const VERSION = require('kafkajs/package.json').version
const CLIENT = 'kafkajs'
const MESSAGE_MAX_BYTES = 1048588
const AT_LIMIT_VALUE = MESSAGE_MAX_BYTES - 72
const BEYOND_LIMIT_VALUE = MESSAGE_MAX_BYTES - 71

const LZ4Codec = LZ4Module.default || LZ4Module
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
// KafkaJS ships no ZSTD codec: a small one over the zstd WebAssembly build.
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress (encoder) { return Buffer.from(zstd.compress(encoder.buffer, 3)) },
  async decompress (buffer) { return Buffer.from(zstd.decompress(buffer)) }
})

const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD }

function check (cond, msg) { if (!cond) throw new Error(msg) }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
async function waitUntil (fn, seconds, what) {
  const deadline = Date.now() + seconds * 1000
  while (Date.now() < deadline) {
    if (await fn()) return
    await sleep(100) // polling interval, bounded by the deadline
  }
  throw new Error(`timed out waiting for ${what}`)
}

// Replication factor of the topics a scenario creates: COMPAT_REPLICATION_FACTOR, set by
// compat/run_matrix.py (1 against one broker, 3 against a three-broker cluster); default 1.
function replicationFactor () {
  const raw = process.env.COMPAT_REPLICATION_FACTOR || '1'
  const rf = Number(raw)
  if (!Number.isInteger(rf) || rf < 1) {
    console.error(`COMPAT_REPLICATION_FACTOR must be a positive integer, not '${raw}'`)
    process.exit(2)
  }
  return rf
}

// How to connect, from the environment compat/run_matrix.py sets for its SASL_SSL column
// (COMPAT_SECURITY_PROTOCOL, COMPAT_SASL_MECHANISM, COMPAT_SASL_USERNAME, COMPAT_SASL_PASSWORD,
// COMPAT_SSL_CA); nothing for PLAINTEXT.
function security () {
  const protocol = process.env.COMPAT_SECURITY_PROTOCOL || 'PLAINTEXT'
  if (protocol === 'PLAINTEXT') return {}
  if (protocol !== 'SASL_SSL') {
    process.stderr.write(`COMPAT_SECURITY_PROTOCOL: only PLAINTEXT and SASL_SSL are set up, not ${protocol}\n`)
    process.exit(2)
  }
  return {
    ssl: { ca: [require('fs').readFileSync(process.env.COMPAT_SSL_CA, 'utf8')] },
    sasl: {
      mechanism: process.env.COMPAT_SASL_MECHANISM.toLowerCase(),
      username: process.env.COMPAT_SASL_USERNAME,
      password: process.env.COMPAT_SASL_PASSWORD
    }
  }
}

class Ctx {
  // bootstrap: host:port[,host:port...]
  constructor (bootstrap, scenario, rf) {
    this.bootstrap = bootstrap
    this.scenario = scenario
    this.rf = rf
    this.kafka = new Kafka({ clientId: 'kbroker-compat', brokers: bootstrap.split(','), logLevel: logLevel.NOTHING, retry: { retries: 3 }, ...security() })
  }

  topic () { return `compat-${CLIENT}-${this.scenario}-${crypto.randomBytes(4).toString('hex')}`.replace(/_/g, '-') }
  group () { return `g-${CLIENT}-${this.scenario}-${crypto.randomBytes(4).toString('hex')}` }
}

async function withAdmin (ctx, fn) {
  const a = ctx.kafka.admin()
  await a.connect()
  try { return await fn(a) } finally { await a.disconnect() }
}

async function nPartitions (a, name) {
  try {
    const md = await a.fetchTopicMetadata({ topics: [name] })
    return md.topics[0].partitions.length
  } catch (e) { return 0 }
}

async function createTopic (ctx, n = 1) {
  const name = ctx.topic()
  await withAdmin(ctx, async (a) => {
    await a.createTopics({ topics: [{ topic: name, numPartitions: n, replicationFactor: ctx.rf }], waitForLeaders: true })
    await waitUntil(async () => (await nPartitions(a, name)) === n, 15, 'topic metadata')
  })
  return name
}

async function produce (ctx, opts, send) {
  const p = ctx.kafka.producer({ allowAutoTopicCreation: false, ...opts })
  await p.connect()
  try { return await send(p) } finally { await p.disconnect() }
}

async function consumeFromStart (ctx, topic, n, opts = {}) {
  const c = ctx.kafka.consumer({ maxWaitTimeInMs: 500, groupId: ctx.group(), ...opts })
  await c.connect()
  const out = []
  try {
    await c.subscribe({ topic, fromBeginning: true })
    await c.run({ autoCommit: false, eachMessage: async ({ partition, message }) => { out.push({ partition, ...message }) } })
    await waitUntil(() => out.length >= n, 30, `${n} records (got ${out.length})`)
  } finally { await c.disconnect() }
  return out
}

function produceConsume (codec) {
  return async (ctx) => {
    const topic = await createTopic(ctx)
    const values = []
    for (let i = 0; i < 100; i++) values.push(`value-${i}-`.repeat(20))
    await produce(ctx, {}, (p) => p.send({ topic, compression: CODECS[codec], messages: values.map((value) => ({ value })) }))
    const got = (await consumeFromStart(ctx, topic, 100)).map((m) => m.value.toString())
    check(JSON.stringify(got) === JSON.stringify(values), 'values differ from those produced')
  }
}

async function keyedOrdering (ctx) {
  const topic = await createTopic(ctx, 3)
  const messages = []
  for (let i = 0; i < 300; i++) messages.push({ key: `k${i % 5}`, value: String(i) })
  await produce(ctx, {}, (p) => p.send({ topic, messages }))
  const seen = {}
  const parts = {}
  for (const m of await consumeFromStart(ctx, topic, 300)) {
    const k = m.key.toString();
    (seen[k] = seen[k] || []).push(Number(m.value.toString()));
    (parts[k] = parts[k] || new Set()).add(m.partition)
  }
  for (const [k, vals] of Object.entries(seen)) {
    check(vals.every((v, i) => i === 0 || vals[i - 1] < v), `key ${k} out of order`)
    check(parts[k].size === 1, `key ${k} spread over partitions`)
  }
}

async function headersTimestamps (ctx) {
  const topic = await createTopic(ctx)
  const ts = 1600000000000
  const messages = [0, 1, 2].map((i) => ({ key: 'k', value: 'x', timestamp: String(ts + i), headers: { h1: ['v1', 'again'], h2: '' } }))
  await produce(ctx, {}, (p) => p.send({ topic, messages }))
  const got = await consumeFromStart(ctx, topic, 3)
  got.forEach((m, i) => {
    check(m.timestamp === String(ts + i), `timestamp ${m.timestamp}`)
    const h1 = [].concat(m.headers.h1 || []).map(String)
    check(JSON.stringify(h1) === '["v1","again"]', `header h1 ${h1}`)
    check(m.headers.h2 !== undefined && String(m.headers.h2) === '', `header h2 ${m.headers.h2}`)
  })
}

async function groupThreeLeave (ctx) {
  const topic = await createTopic(ctx, 6)
  const groupId = ctx.group()
  const members = []
  for (let i = 0; i < 3; i++) {
    const c = ctx.kafka.consumer({ maxWaitTimeInMs: 500, groupId, sessionTimeout: 10000, heartbeatInterval: 500, rebalanceTimeout: 10000 })
    const m = { c, parts: [] }
    c.on(c.events.GROUP_JOIN, (e) => { m.parts = (e.payload.memberAssignment[topic] || []).slice() })
    await c.connect()
    await c.subscribe({ topic })
    await c.run({ eachMessage: async () => {} })
    members.push(m)
  }
  const covered = (ms) => {
    const all = new Set()
    let sum = 0
    for (const m of ms) {
      if (m.parts.length === 0) return false
      sum += m.parts.length
      m.parts.forEach((p) => all.add(p))
    }
    return sum === 6 && all.size === 6
  }
  try {
    await waitUntil(() => covered(members), 45, 'three members sharing six partitions')
    const leaving = members.shift()
    await leaving.c.disconnect()
    await waitUntil(() => covered(members), 45, 'two members taking over six partitions')
  } finally {
    for (const m of members) await m.c.disconnect()
  }
}

async function commitResume (ctx) {
  const topic = await createTopic(ctx)
  const groupId = ctx.group()
  await produce(ctx, {}, (p) => p.send({ topic, messages: [...Array(10).keys()].map((i) => ({ value: String(i) })) }))
  let c = ctx.kafka.consumer({ maxWaitTimeInMs: 500, groupId })
  await c.connect()
  const first = []
  await c.subscribe({ topic, fromBeginning: true })
  await c.run({ autoCommit: false, eachMessage: async ({ message }) => { first.push(message) } })
  await waitUntil(() => first.length >= 5, 30, '5 records')
  await c.commitOffsets([{ topic, partition: 0, offset: '5' }])
  await c.disconnect()
  c = ctx.kafka.consumer({ maxWaitTimeInMs: 500, groupId })
  await c.connect()
  const second = []
  try {
    await c.subscribe({ topic, fromBeginning: true })
    await c.run({ autoCommit: false, eachMessage: async ({ message }) => { second.push(message) } })
    await waitUntil(() => second.length >= 5, 30, '5 records after resuming')
  } finally { await c.disconnect() }
  check(second[0].offset === '5' && second[0].value.toString() === '5', `resumed at offset ${second[0].offset}`)
}

async function adminTopics (ctx) {
  const name = await createTopic(ctx)
  await withAdmin(ctx, async (a) => {
    await a.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name, configEntries: [{ name: 'retention.ms', value: '12345' }] }] })
    await waitUntil(async () => {
      const d = await a.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name, configNames: ['retention.ms'] }] })
      const e = d.resources[0].configEntries.find((x) => x.configName === 'retention.ms')
      return e && e.configValue === '12345'
    }, 10, 'retention.ms altered')
    await a.createPartitions({ topicPartitions: [{ topic: name, count: 3 }] })
    await waitUntil(async () => (await nPartitions(a, name)) === 3, 10, '3 partitions')
    await a.deleteTopics({ topics: [name] })
    await waitUntil(async () => !(await a.listTopics()).includes(name), 15, 'topic deleted')
  })
}

async function offsetsByTimestamp (ctx) {
  const topic = await createTopic(ctx)
  const t = 1700000000000
  await produce(ctx, {}, (p) => p.send({ topic, messages: [0, 1, 2].map((i) => ({ value: 'v', timestamp: String(t + 1000 * i) })) }))
  await withAdmin(ctx, async (a) => {
    const at = await a.fetchTopicOffsetsByTimestamp(topic, t + 500)
    check(at[0].offset === '1', `offset for t+500: ${at[0].offset}`)
    const past = await a.fetchTopicOffsetsByTimestamp(topic, t + 5000)
    check(past[0].offset === '-1' || past[0].offset === '3', `offset past the last timestamp: ${past[0].offset}`)
    const o = await a.fetchTopicOffsets(topic)
    check(o[0].low === '0' && o[0].high === '3', `earliest/latest ${o[0].low}/${o[0].high}`)
  })
}

async function idempotentProducer (ctx) {
  const topic = await createTopic(ctx)
  const res = await produce(ctx, { idempotent: true, maxInFlightRequests: 1 }, (p) =>
    p.send({ topic, acks: -1, messages: [...Array(50).keys()].map((i) => ({ value: String(i) })) }))
  check(res[0].baseOffset === '0', `base offset ${res[0].baseOffset}`)
  const got = (await consumeFromStart(ctx, topic, 50)).map((m) => m.value.toString())
  check(JSON.stringify(got) === JSON.stringify([...Array(50).keys()].map(String)), 'values out of order or duplicated')
}

async function transactionsReadCommitted (ctx) {
  const topic = await createTopic(ctx)
  await produce(ctx, { transactionalId: ctx.group(), idempotent: true, maxInFlightRequests: 1 }, async (p) => {
    for (const [txn, commit] of [[0, true], [1, false], [2, true]]) {
      const tx = await p.transaction()
      await tx.send({ topic, messages: [...Array(5).keys()].map((i) => ({ value: `${txn}-${i}` })) })
      if (commit) await tx.commit(); else await tx.abort()
    }
  })
  // KafkaJS consumers read committed by default (readUncommitted: false).
  const got = (await consumeFromStart(ctx, topic, 10)).map((m) => m.value.toString())
  const want = [0, 2].flatMap((t) => [...Array(5).keys()].map((i) => `${t}-${i}`))
  check(JSON.stringify(got) === JSON.stringify(want), `read_committed saw ${got}`)
}

async function recordAtSizeLimit (ctx) {
  const topic = await createTopic(ctx)
  const res = await produce(ctx, {}, (p) => p.send({ topic, messages: [{ value: Buffer.alloc(AT_LIMIT_VALUE, 120) }] }))
  const got = await consumeFromStart(ctx, topic, 1, { maxBytesPerPartition: 2 * 1024 * 1024 })
  check(res[0].baseOffset === '0' && got[0].value.length === AT_LIMIT_VALUE, 'large record not read back')
}

async function recordBeyondSizeLimit (ctx) {
  const topic = await createTopic(ctx)
  try {
    await produce(ctx, { retry: { retries: 0 } }, (p) => p.send({ topic, messages: [{ value: Buffer.alloc(BEYOND_LIMIT_VALUE, 120) }] }))
  } catch (e) {
    const type = e.type || (e.originalError && e.originalError.type) || ''
    check(type === 'MESSAGE_TOO_LARGE' || /too large/i.test(e.message), `unexpected error ${e.name}: ${e.message}`)
    return
  }
  throw new Error('broker accepted a batch beyond message.max.bytes')
}

async function unknownTopic (ctx) {
  const name = ctx.topic()
  try {
    await produce(ctx, { retry: { retries: 1 } }, (p) => p.send({ topic: name, messages: [{ value: 'v' }] }))
  } catch (e) {
    const type = e.type || (e.originalError && e.originalError.type) || ''
    check(type === 'UNKNOWN_TOPIC_OR_PARTITION' || /does not host this topic|unknown topic/i.test(e.message), `unexpected error ${e.name}: ${e.message}`)
    const topics = await withAdmin(ctx, (a) => a.listTopics())
    check(!topics.includes(name), 'topic was auto-created')
    return
  }
  throw new Error('produce to an unknown topic succeeded')
}

const SCENARIOS = {}
for (const c of Object.keys(CODECS)) SCENARIOS[`produce_consume_${c}`] = produceConsume(c)
Object.assign(SCENARIOS, {
  keyed_ordering: keyedOrdering,
  headers_timestamps: headersTimestamps,
  group_three_leave: groupThreeLeave,
  commit_resume: commitResume,
  admin_topics: adminTopics,
  offsets_by_timestamp: offsetsByTimestamp,
  idempotent_producer: idempotentProducer,
  transactions_read_committed: transactionsReadCommitted,
  record_at_size_limit: recordAtSizeLimit,
  record_beyond_size_limit: recordBeyondSizeLimit,
  unknown_topic: unknownTopic
})

async function main () {
  const args = process.argv.slice(2)
  if (args[0] === '--list') { console.log(Object.keys(SCENARIOS).join('\n')); return }
  if (args[0] === '--version') { console.log(VERSION); return }
  if (args.length < 2) { console.error('usage: node scenarios.js BOOTSTRAP SCENARIO... | --list'); process.exit(2) }
  const rf = replicationFactor()
  await zstd.init()
  for (const name of args.slice(1)) {
    const t0 = Date.now()
    const rec = { client: CLIENT, client_version: VERSION, scenario: name, ok: false, error: '' }
    const fn = SCENARIOS[name]
    if (!fn) {
      rec.error = 'unsupported scenario'
    } else {
      try {
        await fn(new Ctx(args[0], name, rf))
        rec.ok = true
      } catch (e) {
        rec.error = `${e.name}: ${e.message}`.slice(0, 500)
        console.error(e)
      }
    }
    rec.seconds = (Date.now() - t0) / 1000
    console.log(JSON.stringify(rec))
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
