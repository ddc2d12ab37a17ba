/** write_files encodings: base64 (b64), gzip (gz), and gzip+base64 in any spelling the reference takes. */
import { zlib } from './userdata';

/** Largest decoded file unpacked, so a gzip bomb in content stays cheap. */
const maxDecodedSize = 64 * 1024 * 1024;

const base64Alphabet = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict standard base64 as Go decodes it: padding required; CR and LF are skipped. A string says why not. */
export function decodeBase64(bytes: Buffer): Buffer | string {
  const text = bytes.toString('latin1').replace(/[\r\n]/g, '');
  if (!base64Alphabet.test(text)) return 'it has characters outside the base64 alphabet';
  if (text.length % 4 !== 0) return 'its length is not a multiple of 4 (missing padding?)';
  return Buffer.from(text, 'base64');
}

function gunzip(bytes: Buffer): Buffer | string {
  try {
    return zlib().gunzipSync(bytes, { maxOutputLength: maxDecodedSize });
  } catch (err) {
    return `it is not valid gzip data (${(err as Error).message})`;
  }
}

/**
 * Decodes content written with `encoding` (undefined: plain). Returns the bytes, or a string that
 * says why they cannot be decoded. An unknown encoding returns the bytes unchanged: the schema
 * reports it.
 */
export function decodeContent(bytes: Buffer, encoding: string | undefined): Buffer | string {
  let data: Buffer | string = bytes;
  for (const step of (encoding ?? '').split('+').reverse()) {
    if (typeof data === 'string') break;
    if (step === 'base64' || step === 'b64') data = decodeBase64(data);
    else if (step === 'gzip' || step === 'gz') data = gunzip(data);
  }
  return data;
}
