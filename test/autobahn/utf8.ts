/**
 * Incremental UTF-8 validator (RFC 3629 well-formedness: no overlongs, no
 * surrogates, nothing above U+10FFFF).
 *
 * Same contract as Autobahn's `Utf8Validator.validate()`: feed chunks, get
 * back whether everything so far is valid, whether the input ends on a code
 * point boundary, and where validation bailed out.
 */
export interface Utf8Result {
  /** No invalid octet seen so far. */
  valid: boolean;
  /** Valid and the consumed input ends on a complete code point. */
  endsOnCodePoint: boolean;
  /** Index inside the current chunk (chunk length when valid, else the offending octet). */
  currentIndex: number;
  /** Index inside everything consumed since reset(). */
  totalIndex: number;
}

export class Utf8Validator {
  /** Continuation octets still needed for the current code point. */
  private need = 0;
  /** Allowed range for the next continuation octet. */
  private lo = 0x80;
  private hi = 0xbf;
  private total = 0;
  private failed = false;

  reset(): void {
    this.need = 0;
    this.lo = 0x80;
    this.hi = 0xbf;
    this.total = 0;
    this.failed = false;
  }

  validate(chunk: Uint8Array): Utf8Result {
    if (this.failed) {
      return { valid: false, endsOnCodePoint: false, currentIndex: 0, totalIndex: this.total };
    }
    let need = this.need;
    let lo = this.lo;
    let hi = this.hi;
    const n = chunk.length;
    for (let i = 0; i < n; i++) {
      const b = chunk[i]!;
      if (need === 0) {
        if (b < 0x80) continue;
        if (b >= 0xc2 && b <= 0xdf) {
          need = 1; lo = 0x80; hi = 0xbf;
        } else if (b === 0xe0) {
          need = 2; lo = 0xa0; hi = 0xbf; // no overlongs
        } else if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) {
          need = 2; lo = 0x80; hi = 0xbf;
        } else if (b === 0xed) {
          need = 2; lo = 0x80; hi = 0x9f; // no UTF-16 surrogates
        } else if (b === 0xf0) {
          need = 3; lo = 0x90; hi = 0xbf; // no overlongs
        } else if (b >= 0xf1 && b <= 0xf3) {
          need = 3; lo = 0x80; hi = 0xbf;
        } else if (b === 0xf4) {
          need = 3; lo = 0x80; hi = 0x8f; // nothing above U+10FFFF
        } else {
          return this.fail(i);
        }
      } else {
        if (b < lo || b > hi) return this.fail(i);
        need -= 1;
        lo = 0x80;
        hi = 0xbf;
      }
    }
    this.need = need;
    this.lo = lo;
    this.hi = hi;
    this.total += n;
    return { valid: true, endsOnCodePoint: need === 0, currentIndex: n, totalIndex: this.total };
  }

  private fail(i: number): Utf8Result {
    this.failed = true;
    this.total += i;
    return { valid: false, endsOnCodePoint: false, currentIndex: i, totalIndex: this.total };
  }
}

/** One-shot check: valid UTF-8 that ends on a code point boundary. */
export function isCompleteUtf8(data: Uint8Array): boolean {
  const v = new Utf8Validator();
  const r = v.validate(data);
  return r.valid && r.endsOnCodePoint;
}
