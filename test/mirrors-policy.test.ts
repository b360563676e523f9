/**
 * MirrorPolicy, the choice of a mirror per request, on its own: in-flight
 * requests weighed by measured throughput, cooldowns that double, removal.
 * (The loopback downloads in mirrors.test.ts show the same rules at work.)
 */
import { describe, expect, it } from 'vitest';
import { MirrorPolicy } from '../src/mirrors/policy.js';

const options = { cooldownMs: 1000, maxCooldownMs: 4000 };
const MiB = 1024 * 1024;

describe('MirrorPolicy', () => {
  it('spreads over unmeasured mirrors by in-flight requests, then by requests so far', () => {
    const policy = new MirrorPolicy(3, options);
    const picked = [0, 1, 2, 3].map(() => {
      const m = policy.pick(0);
      if (m === undefined) throw new Error('none');
      policy.started(m);
      return m.index;
    });
    expect(picked.slice(0, 3).sort()).toEqual([0, 1, 2]);
    expect(policy.mirrors.map((m) => m.inFlight).reduce((a, b) => a + b)).toBe(4);
  });

  it('a mirror measured ten times slower is chosen only when the fast one has ten times its requests in flight', () => {
    const policy = new MirrorPolicy(2, options);
    const [fast, slow] = policy.mirrors;
    if (fast === undefined || slow === undefined) throw new Error('two mirrors');
    policy.started(fast);
    policy.ended(fast, 10 * MiB, 100, true); // 100 MiB/s
    policy.started(slow);
    policy.ended(slow, 1 * MiB, 100, true); // 10 MiB/s
    const choices: number[] = [];
    for (let i = 0; i < 11; i++) {
      const m = policy.pick(0);
      if (m === undefined) throw new Error('none');
      policy.started(m);
      choices.push(m.index);
    }
    expect(choices.filter((i) => i === 1)).toHaveLength(1);
  });

  it('a failing mirror cools down, doubling up to the cap; with every mirror cooling, the soonest back is chosen', () => {
    const policy = new MirrorPolicy(2, options);
    const [a, b] = policy.mirrors;
    if (a === undefined || b === undefined) throw new Error('two mirrors');
    expect(policy.failed(a, 0)).toBe(1000);
    expect(policy.pick(500)?.index).toBe(1);
    expect(policy.failed(a, 0)).toBe(2000);
    expect(policy.failed(a, 0)).toBe(4000);
    expect(policy.failed(a, 0)).toBe(4000);
    policy.failed(b, 100);
    expect(policy.pick(200)?.index).toBe(1); // b is back at 1100, a at 4000
    policy.ended(a, 0, 0, true);
    expect(a.failuresInARow).toBe(0);
  });

  it('a removed mirror is never chosen, nor one excluded for this request; none left is undefined', () => {
    const policy = new MirrorPolicy(2, options);
    const [a] = policy.mirrors;
    if (a === undefined) throw new Error('a mirror');
    policy.remove(a);
    expect(policy.pick(0)?.index).toBe(1);
    expect(policy.pick(0, new Set([1]))).toBeUndefined();
    expect(policy.active().map((m) => m.index)).toEqual([1]);
  });
});
