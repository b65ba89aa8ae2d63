import type { IncomingMessage } from 'node:http';
import { ApiError } from './errors.ts';

/**
 * Reads a request body as text, refusing anything over `limit` bytes with a 413 —
 * from Content-Length before reading when it is declared, else while reading (a
 * chunked body is cut off as soon as it passes the limit). Channel signatures are
 * computed over exactly these bytes.
 */
export async function readBody(req: Request, limit: number, incoming?: IncomingMessage): Promise<string> {
  const declared = req.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);
  const bytes = incoming ? await readIncoming(incoming, limit) : await readStream(req, limit);
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new ApiError('INVALID_BODY', 'request body is not valid UTF-8');
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Parses a JSON body; an empty or malformed one is a 400 naming the problem. */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') throw new ApiError('INVALID_JSON', 'request body is empty; expected a JSON object');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ApiError('INVALID_JSON', `request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function tooLarge(limit: number): ApiError {
  return new ApiError('BODY_TOO_LARGE', `request body is larger than the limit of ${limit} bytes (gateway.bodyLimitBytes)`, { limit });
}

function readIncoming(incoming: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        // Stop buffering; the rest is discarded as it arrives.
        incoming.resume();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new ApiError('INVALID_BODY', `request body could not be read: ${err.message}`));
    };
    const onAborted = () => onError(new Error('client aborted the request'));
    if (incoming.readableEnded) {
      resolve(Buffer.alloc(0));
      return;
    }
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
    incoming.on('aborted', onAborted);
  });
}

async function readStream(req: Request, limit: number): Promise<Uint8Array> {
  if (!req.body) return new Uint8Array(0);
  const reader = (req.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}
