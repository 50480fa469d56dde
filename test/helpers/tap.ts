import type t from 'tap'

/** The type of the `t` a subtest's callback receives. */
export type TestContext = Parameters<Parameters<typeof t.test>[0]>[0]
