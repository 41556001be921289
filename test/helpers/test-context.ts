/**
 * What a test helper needs of node:test's TestContext: a place to register
 * clean-up. Helpers take this rather than the whole TestContext so that a
 * describe/it callback, a test() callback or a hand-made stub all fit.
 */
export interface TestCtx {
  after(fn: () => unknown): void;
}
