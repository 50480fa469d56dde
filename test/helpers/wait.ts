/**
 * Waiting for a condition instead of sleeping a fixed time: `waitUntil`
 * polls `predicate()` every few ms and fails the test (rather than hanging
 * it) if it does not hold within a generous bound. The bound is no speed
 * assertion: only a broken behaviour should ever reach it.
 */
export const delay = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Resolves when `predicate()` holds (polled every few ms; it may be async); rejects after `ms`. */
export async function waitUntil (predicate: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await delay(2)
  }
}
