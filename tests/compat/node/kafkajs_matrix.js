// kafkajs against a Brook cluster: every matrix scenario in one process.
// Usage: node kafkajs_matrix.js BOOTSTRAP PREFIX (NODE_PATH points at the cached node_modules).
// Topics PREFIX-<codec> (1 partition) and PREFIX-group (4 partitions) exist before it runs.
// One JSON line per scenario: {"cell", "ok", "detail", "ms"}. kafkajs has gzip built in and snappy from
// the pure-JS kafkajs-snappy package; its lz4 and zstd codec packages need native addons (node-gyp), so
// the matrix does not install them.
const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec

const [bootstrap, prefix] = process.argv.slice(2)
const kafka = new Kafka({ clientId: 'brook-compat-kafkajs', brokers: bootstrap.split(','), logLevel: logLevel.NOTHING })
const N = 200
const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy }

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function check (condition, message) {
  if (!condition) throw new Error(message)
}

async function cell (name, body) {
  const start = Date.now()
  let ok = true
  let detail
  try {
    detail = await body()
  } catch (e) {
    ok = false
    detail = String((e && e.stack) || e).split('\n').slice(0, 3).join(' | ')
  }
  process.stdout.write(JSON.stringify({ cell: name, ok, detail: String(detail), ms: Date.now() - start }) + '\n')
}

async function waitFor (what, timeoutMs, cond, state) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (cond()) return
    await sleep(100)
  }
  throw new Error(`timed out waiting for ${what}; ${JSON.stringify(state ? state() : null)}`)
}

async function produceCodec (codec) {
  const topic = `${prefix}-${codec}`
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  try {
    const messages = []
    for (let i = 0; i < N; i++) {
      messages.push({ key: `k${i}`, value: `${topic}-v${i}`, partition: 0, headers: { h: String(i) } })
    }
    // kafkajs sends one send() as one batch per partition: acks=-1 (all), idempotent.
    const [meta] = await producer.send({ topic, acks: -1, compression: CODECS[codec], messages })
    check(meta.errorCode === 0 && meta.baseOffset === '0', `acknowledged as ${JSON.stringify(meta)}`)
  } finally {
    await producer.disconnect()
  }
  const got = []
  const consumer = kafka.consumer({ groupId: `${prefix}-reader-${codec}` })
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({ autoCommit: false, eachMessage: async ({ message }) => { got.push(message) } })
    await waitFor(`${N} records`, 30000, () => got.length >= N, () => got.length)
  } finally {
    await consumer.disconnect()
  }
  check(got.length === N, `read back ${got.length} of ${N}`)
  got.forEach((m, i) => {
    check(m.offset === String(i) && m.key.toString() === `k${i}` && m.value.toString() === `${topic}-v${i}` &&
      m.headers.h.toString() === String(i), `record ${i} read back as ${m.key}=${m.value} at ${m.offset}`)
  })
  return `${N} records, ${codec}, idempotent, acks=all`
}

async function produceGroupRecords (tag, count) {
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let i = 0; i < count; i++) messages.push({ value: `${tag}${i}`, partition: i % 4 })
  await producer.send({ topic: `${prefix}-group`, acks: -1, messages })
  await producer.disconnect()
}

// A group member that records its assignment (GROUP_JOIN events) and every value it reads.
async function member (groupId, commit) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500, rebalanceTimeout: 10000 })
  const state = { owned: null, values: [], consumer }
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    state.owned = (e.payload.memberAssignment[`${prefix}-group`] || []).slice().sort()
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [`${prefix}-group`], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      state.values.push(message.value.toString())
      if (commit) await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
    }
  })
  return state
}

async function committedSum (admin, groupId) {
  const offsets = await admin.fetchOffsets({ groupId, topics: [`${prefix}-group`] })
  return offsets[0].partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0)
}

async function main () {
  for (const codec of Object.keys(CODECS)) await cell(`produce.${codec}`, () => produceCodec(codec))
  const admin = kafka.admin()
  await admin.connect()
  await cell('group.consume_commit', async () => {
    await produceGroupRecords('a', 100)
    const m = await member(`${prefix}-g1`, true)
    try {
      await waitFor('100 records', 60000, () => m.values.length >= 100, () => m.values.length)
      await sleep(500)
    } finally {
      await m.consumer.disconnect()
    }
    check(m.values.length === 100, `group member read ${m.values.length} records, not 100`)
    const sum = await committedSum(admin, `${prefix}-g1`)
    check(sum === 100, `committed offsets sum to ${sum}, not 100`)
    return `100 records through group ${prefix}-g1, committed`
  })
  await cell('group.resume', async () => {
    await produceGroupRecords('b', 8)
    const m = await member(`${prefix}-g1`, true)
    try {
      await waitFor('8 new records', 60000, () => m.values.length >= 8, () => m.values)
      await sleep(1000)
    } finally {
      await m.consumer.disconnect()
    }
    const got = m.values.slice().sort()
    check(JSON.stringify(got) === JSON.stringify(['b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7']),
      `a new member of the group read ${got} (expected only the 8 new records)`)
    return 'a new member resumed from the committed offsets'
  })
  await cell('group.rebalance', async () => {
    const group = `${prefix}-g2`
    const all = JSON.stringify([0, 1, 2, 3])
    const a = await member(group, false)
    let b = null
    const state = () => [a.owned, b && b.owned]
    try {
      await waitFor('the first member to own 4 partitions', 60000, () => JSON.stringify(a.owned) === all, state)
      b = await member(group, false)
      await waitFor('2 + 2 partitions after a join', 60000, () => a.owned && b.owned && a.owned.length === 2 &&
        b.owned.length === 2 && JSON.stringify(a.owned.concat(b.owned).sort()) === all, state)
      await b.consumer.disconnect()
      await waitFor('4 partitions back on the first member after a leave', 60000, () => JSON.stringify(a.owned) === all, state)
    } finally {
      await a.consumer.disconnect()
      if (b) await b.consumer.disconnect()
    }
    return 'join: 4 -> 2+2, leave: 4'
  })
  const topic = `${prefix}-admin`
  const resource = { type: ConfigResourceTypes.TOPIC, name: topic }
  const describe = async (key) => {
    const d = await admin.describeConfigs({ includeSynonyms: false, resources: [resource] })
    const entries = d.resources[0].configEntries
    const e = entries.find((x) => x.configName === key)
    check(e, `${key} not described`)
    return [e.configValue, entries.length]
  }
  await cell('admin.create_topic', async () => {
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 2, replicationFactor: 3, configEntries: [{ name: 'retention.ms', value: '3600000' }] }]
    })
    check(created === true, `createTopics returned ${created}`)
    return topic
  })
  await cell('admin.describe_topic', async () => {
    const meta = await admin.fetchTopicMetadata({ topics: [topic] })
    const parts = meta.topics[0].partitions
    check(parts.length === 2 && parts.every((p) => p.leader >= 0 && p.replicas.length === 3), `described as ${JSON.stringify(meta)}`)
    return '2 partitions, 3 replicas'
  })
  await cell('admin.describe_configs', async () => {
    const [v, count] = await describe('retention.ms')
    check(v === '3600000', `retention.ms described as ${v}`)
    return `${count} entries, retention.ms=${v}`
  })
  await cell('admin.describe_broker_configs', async () => {
    const { brokers } = await admin.describeCluster()
    const d = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.BROKER, name: String(brokers[0].nodeId) }] })
    const count = d.resources[0].configEntries.length
    check(count > 0, 'no broker config entries')
    return `broker ${brokers[0].nodeId}: ${count} entries`
  })
  await cell('admin.alter_config', async () => {
    // kafkajs has AlterConfigs (non-incremental) only: it replaces the topic's whole set of overrides.
    await admin.alterConfigs({ validateOnly: false, resources: [{ ...resource, configEntries: [{ name: 'retention.ms', value: '7200000' }] }] })
    const [v] = await describe('retention.ms')
    check(v === '7200000', `after the alter, retention.ms is ${v}`)
    return 'alterConfigs retention.ms=7200000'
  })
  await cell('admin.list_groups', async () => {
    const { groups } = await admin.listGroups()
    check(groups.some((g) => g.groupId === `${prefix}-g1`), `listed ${JSON.stringify(groups)}`)
    return `${groups.length} groups`
  })
  await cell('admin.describe_groups', async () => {
    const { groups } = await admin.describeGroups([`${prefix}-g1`])
    check(groups.length === 1 && groups[0].errorCode === 0 && groups[0].state === 'Empty' && groups[0].members.length === 0,
      `described as ${JSON.stringify(groups)}`)
    const sum = await committedSum(admin, `${prefix}-g1`)
    check(sum === 108, `committed offsets sum to ${sum}, not 108`)
    return 'state Empty, committed offsets sum 108'
  })
  await cell('admin.delete_topic', async () => {
    await admin.deleteTopics({ topics: [topic], timeout: 30000 })
    const deadline = Date.now() + 30000
    while ((await admin.listTopics()).includes(topic)) {
      check(Date.now() < deadline, `${topic} still listed`)
      await sleep(200)
    }
    return `${topic} deleted`
  })
  await admin.disconnect()
  await cell('txn.read_committed', async () => {
    // An aborted then a committed transaction on PREFIX-txn (2 partitions); kafkajs consumers read
    // committed by default (readUncommitted: false): only the committed 20 may come back.
    const txnTopic = `${prefix}-txn`
    const producer = kafka.producer({ transactionalId: `${prefix}-tid`, idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    try {
      const messages = (tag) => Array.from({ length: 20 }, (_, i) => ({ value: `${tag}-${i}`, partition: i % 2 }))
      const aborted = await producer.transaction()
      await aborted.send({ topic: txnTopic, messages: messages('aborted') })
      await aborted.abort()
      const committed = await producer.transaction()
      await committed.send({ topic: txnTopic, messages: messages('committed') })
      await committed.commit()
    } finally {
      await producer.disconnect()
    }
    const got = []
    const consumer = kafka.consumer({ groupId: `${prefix}-txn-reader` })
    await consumer.connect()
    try {
      await consumer.subscribe({ topics: [txnTopic], fromBeginning: true })
      await consumer.run({ autoCommit: false, eachMessage: async ({ message }) => { got.push(message.value.toString()) } })
      await waitFor('20 committed records', 30000, () => got.length >= 20, () => got)
      await sleep(2000) // anything more would be a leak
    } finally {
      await consumer.disconnect()
    }
    check(got.length === 20 && got.every((v) => v.startsWith('committed-')), `read_committed read ${JSON.stringify(got)}`)
    return 'an aborted then a committed transaction; read_committed sees only the committed 20'
  })
}

main().then(() => process.exit(0), (e) => {
  process.stdout.write(JSON.stringify({ cell: 'run', ok: false, detail: String(e), ms: 0 }) + '\n')
  process.exit(1)
})
