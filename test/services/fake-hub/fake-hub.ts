import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local stand-in for huggingface.co, serving the endpoints @huggingface/hub and Python's
 * huggingface_hub call: model info, tree, resolve (with the redirect to a CDN, ETag, X-Repo-Commit,
 * X-Linked-Etag, X-Linked-Size, Range), with faults a test can switch on.
 */

export interface FakeFile {
  content: Buffer;
  lfs: boolean;
  /** sha256 of the content: the LFS oid. */
  sha256: string;
  /** git's blob id of what git stores: the file, or its LFS pointer. */
  gitOid: string;
}

export interface FakeRepo {
  id: string;
  commits: Map<string, Map<string, FakeFile>>;
  refs: Map<string, string>;
  /** 'manual': a token must be granted access; private: any known token. */
  gated: false | 'manual';
  private: boolean;
}

export interface FakeHubFaults {
  /** Close the connection after this many body bytes of the named file (each entry fires once). */
  cutAfter: Map<string, number>;
  /** Files served with one byte changed. */
  wrongBytes: Set<string>;
  /** The next this-many requests get 429. */
  rateLimited: number;
  /** The Retry-After header sent with a 429 (seconds or an HTTP date); none when empty. */
  retryAfter: string;
  /** Body bytes per second (0: as fast as possible). */
  bytesPerSecond: number;
}

export interface LoggedRequest {
  method: string;
  path: string;
  range?: string;
  authorized: boolean;
}

const LFS_EXTENSIONS = /\.(safetensors|bin|pt|pth|gguf|model)$/;

export class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  readonly faults: FakeHubFaults = { cutAfter: new Map(), wrongBytes: new Set(), rateLimited: 0, retryAfter: '7', bytesPerSecond: 0 };
  readonly requests: LoggedRequest[] = [];
  /** Tokens the hub knows; `grantedTokens` may also read manually gated repos. */
  readonly tokens = new Set<string>();
  readonly grantedTokens = new Set<string>();
  treePageSize = 1000;
  url = '';
  /** The CDN's origin: another port, so clients treat it as another host (no token sent there). */
  cdnUrl = '';
  private servers: Server[] = [];
  private blobs = new Map<string, FakeFile & { path: string }>();

  /** Adds a repo whose `main` points at one commit holding `files`; returns the commit. */
  addRepo(id: string, files: Record<string, Buffer | string>, options: { gated?: 'manual'; private?: boolean } = {}): string {
    this.repos.set(id, { id, commits: new Map(), refs: new Map(), gated: options.gated ?? false, private: options.private ?? false });
    return this.pushCommit(id, files);
  }

  /** A new commit on `branch` with `files` replacing or adding to the branch's current files. */
  pushCommit(id: string, files: Record<string, Buffer | string>, branch = 'main'): string {
    const repo = this.repos.get(id);
    if (!repo) throw new Error(`no repo ${id}`);
    const parent = repo.refs.get(branch);
    const tree = new Map(parent ? repo.commits.get(parent) : undefined);
    for (const [path, content] of Object.entries(files)) tree.set(path, fakeFile(path, Buffer.from(content)));
    const sha = createHash('sha1')
      .update(`${parent ?? ''}\n${[...tree].map(([p, f]) => `${p}:${f.gitOid}`).sort().join('\n')}`)
      .digest('hex');
    repo.commits.set(sha, tree);
    repo.refs.set(branch, sha);
    for (const [path, file] of tree) if (file.lfs) this.blobs.set(file.sha256, { ...file, path });
    return sha;
  }

  async start(): Promise<string> {
    this.url = await this.listen();
    this.cdnUrl = await this.listen();
    return this.url;
  }

  async close(): Promise<void> {
    for (const server of this.servers) server.closeAllConnections();
    await Promise.all(this.servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }

  private async listen(): Promise<string> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) sendError(res, 500, 'ServerError', String(error));
        else res.destroy();
      });
    });
    this.servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** Requests whose path contains `part`. */
  requestsTo(part: string): LoggedRequest[] {
    return this.requests.filter((r) => r.path.includes(part));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    this.requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      authorized: token !== undefined,
    });
    if (this.faults.rateLimited > 0) {
      this.faults.rateLimited--;
      if (this.faults.retryAfter) res.setHeader('Retry-After', this.faults.retryAfter);
      return sendError(res, 429, 'RateLimited', 'Too many requests');
    }
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) {
      const blob = this.blobs.get(cdn[1]!);
      if (!blob) return sendError(res, 404, 'EntryNotFound', 'no such blob');
      res.setHeader('ETag', `"${blob.sha256}"`);
      return this.sendBody(req, res, blob.path, blob.content);
    }
    const api = /^\/api\/models\/([^/]+\/[^/]+)(?:\/(revision|tree)\/([^/]+)(\/.*)?)?$/.exec(url.pathname);
    if (api) return this.handleApi(req, res, url, token, api);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (resolve) return this.handleResolve(req, res, token, resolve[1]!, decodeURIComponent(resolve[2]!), decodeURIComponent(resolve[3]!));
    sendError(res, 404, undefined, 'Not Found');
  }

  private handleApi(req: IncomingMessage, res: ServerResponse, url: URL, token: string | undefined, match: RegExpExecArray): void {
    const repo = this.authorize(res, match[1]!, token);
    if (!repo) return;
    const revision = decodeURIComponent(match[3] ?? 'main');
    const commit = resolveCommit(repo, revision);
    if (!commit) return sendError(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    const files = repo.commits.get(commit)!;
    if (match[2] === 'tree') return this.sendTree(res, url, match[1]!, revision, files, match[4]);
    sendJson(res, 200, {
      _id: createHash('md5').update(repo.id).digest('hex').slice(0, 24),
      id: repo.id,
      modelId: repo.id,
      author: repo.id.split('/')[0],
      sha: commit,
      lastModified: '2025-01-01T00:00:00.000Z',
      createdAt: '2025-01-01T00:00:00.000Z',
      private: repo.private,
      gated: repo.gated,
      disabled: false,
      downloads: 0,
      likes: 0,
      tags: [],
      library_name: 'transformers',
      siblings: [...files.keys()].map((rfilename) => ({ rfilename })),
    });
    void req;
  }

  private sendTree(res: ServerResponse, url: URL, repoId: string, revision: string, files: Map<string, FakeFile>, under?: string): void {
    const recursive = url.searchParams.get('recursive') === 'true';
    const prefix = under ? `${decodeURIComponent(under.slice(1))}/` : '';
    const entries: object[] = [];
    const dirs = new Set<string>();
    for (const [path, file] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
      if (!path.startsWith(prefix)) continue;
      const rest = path.slice(prefix.length);
      if (!recursive && rest.includes('/')) {
        const dir = prefix + rest.split('/')[0];
        if (!dirs.has(dir)) entries.push({ type: 'directory', oid: '0'.repeat(40), size: 0, path: dir });
        dirs.add(dir);
        continue;
      }
      if (recursive) for (let d = rest.indexOf('/'); d >= 0; d = rest.indexOf('/', d + 1)) dirs.add(prefix + rest.slice(0, d));
      entries.push({
        type: 'file',
        oid: file.gitOid,
        size: file.content.length,
        path,
        ...(file.lfs ? { lfs: { oid: file.sha256, size: file.content.length, pointerSize: lfsPointer(file).length } } : {}),
      });
    }
    if (recursive) for (const dir of dirs) entries.push({ type: 'directory', oid: '0'.repeat(40), size: 0, path: dir });
    const cursor = Number(url.searchParams.get('cursor') ?? 0);
    const page = entries.slice(cursor, cursor + this.treePageSize);
    if (cursor + this.treePageSize < entries.length) {
      const next = new URL(url);
      next.searchParams.set('cursor', String(cursor + this.treePageSize));
      res.setHeader('Link', `<${next.href}>; rel="next"`);
    }
    void repoId;
    void revision;
    sendJson(res, 200, page);
  }

  private handleResolve(req: IncomingMessage, res: ServerResponse, token: string | undefined, repoId: string, revision: string, path: string): void {
    const repo = this.authorize(res, repoId, token);
    if (!repo) return;
    const commit = resolveCommit(repo, revision);
    if (!commit) return sendError(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    const file = repo.commits.get(commit)!.get(path);
    if (!file) return sendError(res, 404, 'EntryNotFound', `${path} does not exist on "${revision}"`);
    res.setHeader('X-Repo-Commit', commit);
    if (file.lfs) {
      res.setHeader('X-Linked-Etag', `"${file.sha256}"`);
      res.setHeader('X-Linked-Size', String(file.content.length));
      res.setHeader('ETag', `"${file.gitOid}"`);
      res.setHeader('Location', `${this.cdnUrl}/cdn/${file.sha256}`);
      res.writeHead(302).end();
      return;
    }
    res.setHeader('ETag', `"${file.gitOid}"`);
    this.sendBody(req, res, path, file.content);
  }

  /** The repo if `token` may read it; otherwise answers as the Hub does and returns undefined. */
  private authorize(res: ServerResponse, repoId: string, token: string | undefined): FakeRepo | undefined {
    const repo = this.repos.get(repoId);
    const known = token !== undefined && this.tokens.has(token);
    if (token !== undefined && !known) {
      sendError(res, 401, undefined, 'Invalid credentials in Authorization header');
      return undefined;
    }
    if (!repo || (repo.private && !known)) {
      sendError(res, known ? 404 : 401, 'RepoNotFound', 'Repository Not Found');
      return undefined;
    }
    if (repo.gated && !known) {
      sendError(res, 401, 'GatedRepo', `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.`);
      return undefined;
    }
    if (repo.gated && !this.grantedTokens.has(token!)) {
      sendError(res, 403, 'GatedRepo', `Access to model ${repoId} is restricted and you are not in the authorized list. Visit https://huggingface.co/${repoId} to ask for access.`);
      return undefined;
    }
    return repo;
  }

  private sendBody(req: IncomingMessage, res: ServerResponse, path: string, content: Buffer): void {
    let body = content;
    if (this.faults.wrongBytes.has(path) && body.length > 0) {
      body = Buffer.from(body);
      body[body.length >> 1] = body[body.length >> 1]! ^ 0xff;
    }
    const range = parseRange(req.headers.range, body.length);
    if (range === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${body.length}`);
      res.writeHead(416).end();
      return;
    }
    res.setHeader('Accept-Ranges', 'bytes');
    const [start, end] = range ?? [0, body.length - 1];
    res.setHeader('Content-Length', String(end - start + 1));
    if (range) res.setHeader('Content-Range', `bytes ${start}-${end}/${body.length}`);
    res.writeHead(range ? 206 : 200);
    if (req.method === 'HEAD') return void res.end();
    const cut = this.faults.cutAfter.get(path);
    if (cut !== undefined) this.faults.cutAfter.delete(path);
    void this.stream(res, body.subarray(start, end + 1), cut);
  }

  private async stream(res: ServerResponse, body: Buffer, cutAfter: number | undefined): Promise<void> {
    const chunk = this.faults.bytesPerSecond > 0 ? Math.max(1, this.faults.bytesPerSecond >> 4) : 64 * 1024;
    for (let sent = 0; sent < body.length; sent += chunk) {
      if (res.destroyed) return;
      const piece = body.subarray(sent, Math.min(body.length, sent + chunk, cutAfter ?? Infinity));
      if (piece.length > 0 && !res.write(piece)) await new Promise((r) => res.once('drain', r));
      if (cutAfter !== undefined && sent + chunk >= cutAfter) {
        await new Promise((r) => setTimeout(r, 20));
        res.destroy();
        return;
      }
      if (this.faults.bytesPerSecond > 0) await new Promise((r) => setTimeout(r, (chunk / this.faults.bytesPerSecond) * 1000));
    }
    res.end();
  }
}

function fakeFile(path: string, content: Buffer): FakeFile {
  const sha256 = createHash('sha256').update(content).digest('hex');
  const file = { content, lfs: LFS_EXTENSIONS.test(path), sha256, gitOid: '' };
  file.gitOid = gitBlobOid(file.lfs ? lfsPointer(file) : content);
  return file;
}

function lfsPointer(file: { sha256: string; content: Buffer }): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${file.sha256}\nsize ${file.content.length}\n`);
}

export function gitBlobOid(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

function resolveCommit(repo: FakeRepo, revision: string): string | undefined {
  if (revision === 'HEAD') return repo.refs.get('main');
  if (repo.commits.has(revision)) return revision;
  return repo.refs.get(revision);
}

function parseRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header ?? '');
  if (!match) return undefined;
  let start = match[1] ? Number(match[1]) : size - Number(match[2]);
  let end = match[1] && match[2] ? Number(match[2]) : size - 1;
  if (!match[1]) start = Math.max(0, start);
  end = Math.min(end, size - 1);
  if (start >= size || start > end) return 'unsatisfiable';
  return [start, end];
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

function sendError(res: ServerResponse, status: number, code: string | undefined, message: string): void {
  if (code) res.setHeader('X-Error-Code', code);
  res.setHeader('X-Error-Message', message);
  sendJson(res, status, { error: message });
}
