#!/usr/bin/env node
// Creates a background export, waits for it, downloads the file and checks its SHA-256.
//
//   PIPELINE_TOKEN=pex_... node examples/export.mjs [FORMAT] [OUTPUT_DIR]
//
// FORMAT: json, csv (default), ndjson, xlsx or pdf. PIPELINE_URL defaults to
// http://127.0.0.1:8080. Needs Node.js 20 or later (built-in fetch), no packages.

import { createHash } from "node:crypto";
import { createWriteStream, existsSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";

class ExportError extends Error {}

const baseUrl = (process.env.PIPELINE_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
const token = process.env.PIPELINE_TOKEN;
const format = process.argv[2] ?? "csv";
const outDir = process.argv[3] ?? ".";

// The API's error object ({"error": {"code", "message"}}), or the raw body.
async function apiError(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    return JSON.stringify(body.error ?? body);
  } catch {
    return text.slice(0, 500);
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    return await fetch(`${baseUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      // Never follow a redirect with the token attached: see the download below.
      redirect: "manual",
    });
  } catch (e) {
    throw new ExportError(`cannot reach ${baseUrl}: ${e.cause?.message ?? e.message}`);
  }
}

// Only the last path component of a file name, never "", "." or "..".
function safeName(name, fallback) {
  const last = basename(String(name ?? "").replaceAll("\\", "/"));
  return ["", ".", ".."].includes(last) ? fallback : last;
}

async function main() {
  if (!token) throw new ExportError("PIPELINE_TOKEN is not set (a personal token pex_... or a JWT)");
  if (!existsSync(outDir) || !statSync(outDir).isDirectory()) {
    throw new ExportError(`output directory ${outDir} does not exist`);
  }

  let response = await api("POST", "/api/exports", { format });
  if (response.status !== 200 && response.status !== 202) {
    throw new ExportError(`POST /api/exports answered ${response.status}: ${await apiError(response)}`);
  }
  let exp = await response.json();
  console.error(`export ${exp.id} queued (${format})`);

  // Poll until the export is finished.
  while (exp.status === "queued" || exp.status === "running") {
    await sleep(2000);
    response = await api("GET", `/api/exports/${exp.id}`);
    if (response.status !== 200) {
      throw new ExportError(`GET /api/exports/${exp.id} answered ${response.status}: ${await apiError(response)}`);
    }
    exp = await response.json();
    console.error(`  ${exp.status}: ${exp.progress.rows_done ?? 0} rows`);
  }
  if (exp.status !== "succeeded") {
    throw new ExportError(`export ${exp.id} is ${exp.status}: ${JSON.stringify(exp.error)}`);
  }

  // The download endpoint answers 302 to a presigned storage URL. The redirect is followed
  // by hand, with a request that carries no Authorization header, so the token only ever
  // goes to the API.
  response = await api("GET", `/api/exports/${exp.id}/download`);
  const location = response.headers.get("location");
  if (response.status < 300 || response.status > 399 || !location) {
    throw new ExportError(`GET /api/exports/${exp.id}/download answered ${response.status}: ${await apiError(response)}`);
  }
  let download;
  try {
    download = await fetch(new URL(location, `${baseUrl}/`));
  } catch (e) {
    throw new ExportError(`the download from storage failed: ${e.cause?.message ?? e.message}`);
  }
  if (download.status !== 200) {
    throw new ExportError(`the download from storage answered ${download.status}`);
  }

  // Saved under the name the storage sends in Content-Disposition, else the export's file_name.
  const match = /filename="?([^";]+)"?/.exec(download.headers.get("content-disposition") ?? "");
  const path = join(outDir, safeName(match ? match[1] : exp.file_name, exp.id));
  const part = join(outDir, `.${exp.id}.part`);
  const hash = createHash("sha256");
  const hashing = new Transform({
    transform(chunk, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(download.body), hashing, createWriteStream(part));
    const actual = hash.digest("hex");
    if (exp.sha256 && actual !== exp.sha256) {
      throw new ExportError(`SHA-256 mismatch: expected ${exp.sha256}, got ${actual}`);
    }
    renameSync(part, path);
  } finally {
    rmSync(part, { force: true });
  }
  console.log(path);
}

main().catch((e) => {
  console.error(`error: ${e instanceof ExportError ? e.message : e.stack ?? e}`);
  process.exit(1);
});
