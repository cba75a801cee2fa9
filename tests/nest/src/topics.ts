// Creates the contract's topics (the broker does not auto-create them): every request topic and
// every reply topic, TOPIC_PARTITIONS (default 3) partitions each. Extra topic names may follow
// as arguments. Idempotent: existing topics are left alone.
import { ALL_TOPICS, env, line } from "./common";

import { Kafka, logLevel } from "kafkajs";

async function main(): Promise<void> {
  const topics = [...new Set([...ALL_TOPICS, ...process.argv.slice(2)])];
  const kafka = new Kafka({ clientId: "axion-nest-topics", brokers: env.brokers, logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({ topic, numPartitions: env.topicPartitions, replicationFactor: 1 })),
      });
    }
    line({ topics, created: missing, partitions: env.topicPartitions });
  } finally {
    await admin.disconnect();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`topics failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
