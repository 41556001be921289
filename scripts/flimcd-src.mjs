#!/usr/bin/env node
// The flimcd command from its TypeScript sources through tsx's loader, for tests
// and development (`npm run flimcd` does the same): no build step, always current.
// bin/flimcd.js runs the compiled dist/ instead.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/main.ts');
