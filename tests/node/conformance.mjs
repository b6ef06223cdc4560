// The official OpenAI Node.js SDK against the simulator: `node conformance.mjs <case>`.
// OPENAI_BASE_URL and OPENAI_API_KEY point it at the live test server; tests/test_simulator_node.py
// runs one case per test, each on a fresh database. Exit code 0 and "ok <case>" when it holds.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import OpenAI from "openai";

const client = new OpenAI({ maxRetries: 0 });
const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function chatLine(i, extra = {}) {
  return {
    custom_id: `row-${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "gpt-4o-mini", messages: [{ role: "user", content: `Sentiment: great ${i}` }], ...extra },
  };
}

function inputFile(records) {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), "node-sdk-"));
  const file = path.join(folder, "input.jsonl");
  fs.writeFileSync(file, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return file;
}

// The SDK's recommended upload: a read stream, sent chunked with no Content-Length.
async function upload(records) {
  const file = inputFile(records);
  const uploaded = await client.files.create({ file: fs.createReadStream(file), purpose: "batch" });
  assert.equal(uploaded.bytes, fs.statSync(file).size);
  return uploaded;
}

async function finished(batchId) {
  for (let i = 0; i < 200; i++) {
    const batch = await client.batches.retrieve(batchId);
    if (["completed", "failed", "expired", "cancelled"].includes(batch.status)) return batch;
    await wait(50);
  }
  throw new Error(`batch ${batchId} did not finish`);
}

async function rejects(promise, ErrorClass, status) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ErrorClass, `${error} is not a ${ErrorClass.name}`);
    assert.equal(error.status, status);
    assert.match(error.requestID ?? "", /^req_/);
    assert.equal(typeof error.error?.message, "string");
    return error;
  }
  throw new Error(`expected a ${status}`);
}

const cases = {
  async batch_flow() {
    const records = [1, 2, 3].map((i) => chatLine(i));
    const uploaded = await upload(records);
    const content = await (await client.files.content(uploaded.id)).text();
    assert.equal(content.trim().split("\n").length, 3);
    const created = await client.batches.create({
      input_file_id: uploaded.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { job: "node" },
    });
    // Time runs fast in these tests: the batch may be past validating already.
    assert.ok(["validating", "in_progress", "finalizing", "completed"].includes(created.status));
    const done = await finished(created.id);
    assert.equal(done.status, "completed");
    assert.deepEqual(done.metadata, { job: "node" });
    assert.equal(done.request_counts.completed, 3);
    const output = (await (await client.files.content(done.output_file_id)).text()).trim().split("\n");
    const answers = output.map((line) => JSON.parse(line));
    assert.deepEqual(answers.map((a) => a.custom_id).sort(), ["row-1", "row-2", "row-3"]);
    assert.equal(answers[0].response.body.choices[0].message.content, "positive");
    // A batch without metadata still has an object, and auto-pagination walks several pages once.
    const plain = await client.batches.create({
      input_file_id: uploaded.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    assert.deepEqual(plain.metadata, {});
    const seen = [];
    for await (const batch of client.batches.list({ limit: 1 })) seen.push(batch.id);
    assert.deepEqual(seen, [plain.id, created.id]);
    const files = [];
    for await (const file of client.files.list({ limit: 1 })) files.push(file.id);
    assert.equal(new Set(files).size, files.length);
    assert.ok(files.includes(uploaded.id) && files.includes(done.output_file_id));
  },

  // The test arms stuck_finalizing first, so that the batch is still running when cancelled.
  async cancel() {
    const uploaded = await upload([chatLine(1)]);
    const batch = await client.batches.create({
      input_file_id: uploaded.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const cancelling = await client.batches.cancel(batch.id);
    assert.ok(["cancelling", "cancelled"].includes(cancelling.status));
    assert.equal((await finished(batch.id)).status, "cancelled");
    const other = await client.batches.create({
      input_file_id: uploaded.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    await finished(other.id);
    await rejects(client.batches.cancel(other.id), OpenAI.ConflictError, 409);
  },

  async embeddings() {
    // Without encoding_format the SDK asks for base64 and decodes it.
    const decoded = await client.embeddings.create({ model: "text-embedding-3-small", input: ["a", "b"] });
    const floats = await client.embeddings.create({
      model: "text-embedding-3-small",
      input: ["a", "b"],
      encoding_format: "float",
    });
    assert.equal(decoded.data[0].embedding.length, 1536);
    assert.ok(decoded.data[0].embedding.some((v) => v !== 0));
    decoded.data[0].embedding.forEach((v, i) => assert.ok(Math.abs(v - floats.data[0].embedding[i]) < 1e-6));
    const raw = await client.embeddings.create({
      model: "text-embedding-3-large",
      input: "a",
      encoding_format: "base64",
    });
    assert.equal(typeof raw.data[0].embedding, "string");
    assert.equal(Buffer.from(raw.data[0].embedding, "base64").length, 3072 * 4);
    const small = await client.embeddings.create({ model: "text-embedding-3-large", input: "a", dimensions: 256 });
    assert.equal(small.data[0].embedding.length, 256);
  },

  async chat() {
    const messages = [{ role: "user", content: "Sentiment: great" }];
    const answer = await client.chat.completions.create({ model: "gpt-4o-mini", messages });
    assert.equal(answer.choices[0].message.content, "positive");
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Summarise: the shoes fit well and look good" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage = null;
    let finish = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, "chat.completion.chunk");
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.match(text, /the shoes fit well/);
    assert.equal(finish, "stop");
    assert.ok(usage.completion_tokens > 0);
    const tools = [
      {
        type: "function",
        function: {
          name: "classify",
          parameters: {
            type: "object",
            properties: { label: { type: "string", enum: ["positive", "negative"] }, score: { type: "integer" } },
            required: ["label", "score"],
          },
        },
      },
    ];
    const forced = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages,
      tools,
      tool_choice: { type: "function", function: { name: "classify" } },
    });
    assert.equal(forced.choices[0].finish_reason, "tool_calls");
    const [call] = forced.choices[0].message.tool_calls;
    assert.equal(call.function.name, "classify");
    const args = JSON.parse(call.function.arguments);
    assert.ok(["positive", "negative"].includes(args.label) && Number.isInteger(args.score));
  },

  async responses() {
    const response = await client.responses.create({ model: "gpt-4.1-mini", input: "Summarise: the shoes fit" });
    assert.match(response.output_text, /the shoes fit/);
  },

  async moderations() {
    const result = await client.moderations.create({ input: ["I will attack you", "lovely weather"] });
    assert.equal(result.model, "omni-moderation-latest");
    assert.deepEqual(
      result.results.map((r) => r.flagged),
      [true, false],
    );
    assert.equal(result.results[0].categories.violence, true);
  },

  async errors() {
    const missing = await rejects(client.files.retrieve("file-nope"), OpenAI.NotFoundError, 404);
    assert.equal(missing.param, "id");
    await rejects(client.batches.retrieve("batch_nope"), OpenAI.NotFoundError, 404);
    await rejects(client.get("/nowhere"), OpenAI.NotFoundError, 404);
    const model = await client.models.retrieve("gpt-4o-mini");
    assert.equal(model.id, "gpt-4o-mini");
    const unknown = await rejects(client.models.retrieve("gpt-nope"), OpenAI.NotFoundError, 404);
    assert.equal(unknown.code, "model_not_found");
    const uploaded = await upload([chatLine(1)]);
    const refused = await rejects(
      client.batches.create({ input_file_id: uploaded.id, endpoint: "/v1/videos", completion_window: "24h" }),
      OpenAI.BadRequestError,
      400,
    );
    assert.equal(refused.param, "endpoint");
    await rejects(client.batches.list({ after: "batch_gone" }), OpenAI.NotFoundError, 404);
    const stranger = new OpenAI({ apiKey: "sk-wrong-key-1234", maxRetries: 0 });
    const denied = await rejects(stranger.models.list(), OpenAI.AuthenticationError, 401);
    assert.equal(denied.code, "invalid_api_key");
  },
};

const name = process.argv[2];
if (!cases[name]) {
  console.error(`unknown case ${name}; one of: ${Object.keys(cases).join(", ")}`);
  process.exit(2);
}
await cases[name]();
console.log(`ok ${name}`);
