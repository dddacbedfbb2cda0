// A whole deploy through a client generated from aether-server's own /openapi.json.
//
// `schema.d.ts` is generated from the live server by scripts/generated_client.sh; this file must
// compile against it under strict settings, so a document that does not fit what a client needs
// (a missing field, a wrong type, a status that is not listed) fails the build, and a document
// that does not fit what the server answers fails the run.
//
// Environment: AETHER_URL (the server's base URL), AETHER_TOKEN (a deployer's token).
// Every API call goes through the typed client; only the upload itself, which goes to the
// storage URL presign returned, is a plain fetch.
import { execFileSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import createClient from "openapi-fetch";

import type { components, paths } from "./schema.js";

type Deployment = components["schemas"]["DeploymentResponse"];
type DeploymentStatus = components["schemas"]["DeploymentStatus"];
type ErrorEnvelope = components["schemas"]["ErrorEnvelope"];

const POLL_INTERVAL_MS = 200;
const POLL_LIMIT_MS = 60_000;

function env(name: string): string {
    const value = process.env[name];
    if (value === undefined || value === "") {
        throw new Error(`${name} is not set`);
    }
    return value;
}

class Failure extends Error {}

function fail(message: string): never {
    throw new Failure(message);
}

/** Says what a failed call answered, from the typed error envelope. */
function describe(what: string, status: number, error: ErrorEnvelope | undefined): string {
    return error === undefined
        ? `${what}: HTTP ${status} without a body`
        : `${what}: HTTP ${status} ${error.code}: ${error.message}`;
}

/** Whether a deployment in this state can still reach `running`; exhaustive over the document's enum. */
function stillGoing(status: DeploymentStatus): boolean {
    switch (status) {
        case "pending":
        case "deploying":
            return true;
        case "running":
        case "failed":
        case "superseded":
        case "rolled_back":
        case "cancelled":
            return false;
        default: {
            // A status the document adds without this client knowing it fails the build here.
            const unknown: never = status;
            return fail(`unknown deployment status ${String(unknown)}`);
        }
    }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Builds a small Node app as a .tar.gz answering `marker`; returns its bytes. */
function buildArtifact(marker: string): Buffer {
    const dir = mkdtempSync(join(tmpdir(), "aether-client-app-"));
    try {
        const app = join(dir, "app");
        mkdirSync(app);
        writeFileSync(
            join(app, "package.json"),
            JSON.stringify(
                { name: "generated-client-app", version: "1.0.0", private: true, scripts: { start: "node server.js" } },
                null,
                2,
            ),
        );
        writeFileSync(
            join(app, "server.js"),
            [
                'const http = require("node:http");',
                `const marker = ${JSON.stringify(marker)};`,
                "http.createServer((req, res) => {",
                '    res.writeHead(200, { "content-type": "text/plain" });',
                "    res.end(marker);",
                '}).listen(Number(process.env.PORT), "127.0.0.1");',
                "",
            ].join("\n"),
        );
        const tarball = join(dir, "app.tar.gz");
        execFileSync("tar", ["czf", tarball, "-C", app, "package.json", "server.js"]);
        return readFileSync(tarball);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

async function main(): Promise<void> {
    const started = Date.now();
    const baseUrl = env("AETHER_URL");
    const client = createClient<paths>({
        baseUrl,
        headers: { authorization: `Bearer ${env("AETHER_TOKEN")}` },
    });

    const suffix = randomUUID().slice(0, 8);
    const appName = `client-${suffix}`;
    const marker = `aether-generated-client-${randomUUID()}`;

    // The artifact.
    const bytes = buildArtifact(marker);
    const digest = createHash("sha256").update(bytes).digest("hex");
    const sizeBytes = bytes.byteLength;

    // POST /apps
    const created = await client.POST("/apps", { body: { name: appName } });
    if (created.error !== undefined || created.data === undefined) {
        fail(describe("POST /apps", created.response.status, created.error));
    }
    const app = created.data;
    if (created.response.status !== 201) fail(`POST /apps answered ${created.response.status}, not 201`);
    if (app.name !== appName) fail(`POST /apps answered app ${app.name}, not ${appName}`);

    // The same name again: a conflict, as the typed error envelope.
    const again = await client.POST("/apps", { body: { name: appName } });
    if (again.data !== undefined) fail("POST /apps with a taken name succeeded");
    if (again.response.status !== 409) {
        fail(`POST /apps with a taken name answered ${again.response.status}, not 409`);
    }
    const conflict: ErrorEnvelope | undefined = again.error;
    if (conflict === undefined) fail("POST /apps with a taken name answered no error envelope");
    if (conflict.code !== "conflict") fail(`POST /apps with a taken name answered code ${conflict.code}, not conflict`);
    if (typeof conflict.message !== "string" || conflict.message === "") {
        fail("the conflict's error envelope has no message");
    }

    // POST /artifacts/presign
    const presigned = await client.POST("/artifacts/presign", {
        body: { app_name: appName, digest, size_bytes: sizeBytes },
    });
    if (presigned.error !== undefined || presigned.data === undefined) {
        fail(describe("POST /artifacts/presign", presigned.response.status, presigned.error));
    }
    const presign = presigned.data;
    if (presign.method !== "PUT") fail(`presign answered method ${presign.method} for a new artifact, not PUT`);
    if (presign.upload_url === "") fail("presign answered an empty upload_url with method PUT");
    if (presign.upload_id === undefined || presign.upload_id === null) {
        fail("presign answered no upload_id with method PUT");
    }

    // The upload itself goes to the storage URL, with the headers presign asked for.
    const put = await fetch(presign.upload_url, {
        method: presign.method,
        headers: presign.headers,
        body: new Uint8Array(bytes),
    });
    if (!put.ok) fail(`PUT upload_url: HTTP ${put.status} ${await put.text()}`);

    // POST /artifacts/complete
    const completed = await client.POST("/artifacts/complete", {
        body: {
            app_name: appName,
            digest,
            size_bytes: sizeBytes,
            upload_id: presign.upload_id,
            storage_key: presign.storage_key,
        },
    });
    if (completed.error !== undefined || completed.data === undefined) {
        fail(describe("POST /artifacts/complete", completed.response.status, completed.error));
    }
    const artifact = completed.data;
    // `verified` is about a signature (there is none here), not the digest: not asserted.
    if (artifact.duplicate) fail("complete answered a fresh artifact as a duplicate");
    if (artifact.storage_key !== presign.storage_key) {
        fail(`complete answered storage_key ${artifact.storage_key}, presign ${presign.storage_key}`);
    }
    if (artifact.digest.replace(/^sha256:/, "") !== digest) {
        fail(`complete answered digest ${artifact.digest}, not ${digest}`);
    }

    // POST /deployments
    const idempotencyKey = `generated-client-${suffix}`;
    const deployed = await client.POST("/deployments", {
        body: { app_name: appName, digest, idempotency_key: idempotencyKey },
    });
    if (deployed.error !== undefined || deployed.data === undefined) {
        fail(describe("POST /deployments", deployed.response.status, deployed.error));
    }
    const deploymentId = deployed.data.id;
    if (deployed.data.app_name !== appName) fail(`POST /deployments answered app ${deployed.data.app_name}`);

    // GET /deployments/{id} until it runs: at most 60 s, 200 ms apart.
    const deadline = Date.now() + POLL_LIMIT_MS;
    let deployment: Deployment;
    for (;;) {
        const polled = await client.GET("/deployments/{id}", { params: { path: { id: deploymentId } } });
        if (polled.error !== undefined || polled.data === undefined) {
            fail(describe(`GET /deployments/${deploymentId}`, polled.response.status, polled.error));
        }
        deployment = polled.data;
        if (deployment.status === "running") break;
        if (deployment.status === "failed") {
            fail(`deployment ${deploymentId} failed: ${deployment.failure_reason ?? "(no failure_reason)"}`);
        }
        if (!stillGoing(deployment.status)) {
            fail(`deployment ${deploymentId} ended ${deployment.status} without running`);
        }
        if (Date.now() >= deadline) {
            fail(`deployment ${deploymentId} still ${deployment.status} after ${POLL_LIMIT_MS / 1000} s`);
        }
        await sleep(POLL_INTERVAL_MS);
    }
    const url = deployment.url;
    if (url === undefined || url === null || url === "") fail(`running deployment ${deploymentId} has no url`);
    const events = deployment.events ?? [];
    if (!events.some((event) => event.to === "running")) {
        fail(`running deployment ${deploymentId} has no event to running`);
    }

    // The app answers what it was built to answer.
    const answer = await fetch(url);
    const body = await answer.text();
    if (!answer.ok) fail(`GET ${url}: HTTP ${answer.status}`);
    if (body !== marker) fail(`GET ${url} answered ${JSON.stringify(body)}, not ${JSON.stringify(marker)}`);

    console.log(
        [
            `generated client: deployed ${appName} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
            `  artifact  sha256:${digest} (${sizeBytes} bytes)`,
            `  deployment ${deploymentId} running at ${url} (${events.length} events)`,
            "  duplicate app: 409 conflict, as the typed error envelope",
            `  ${url} answered its marker`,
        ].join("\n"),
    );
}

main().catch((error: unknown) => {
    console.error(`generated client: FAILED: ${error instanceof Failure ? error.message : String(error)}`);
    if (!(error instanceof Failure) && error instanceof Error && error.stack !== undefined) {
        console.error(error.stack);
    }
    process.exit(1);
});
