// A slower device's CPU budget, as far as one can be given here: a process
// tree moved into its own cgroup whose CPU time is capped (CFS quota), so the
// decoder, the compositor and the page together get at most `share` of one
// core per wall-clock second. Each thread still runs at this machine's speed
// while it runs; what the cap takes away is the total. Needs root and a
// writable cpu controller (cgroup v2's cpu.max or v1's cfs quota).
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { processTree, sleep } from './lib.mjs';

const V2_ROOT = '/sys/fs/cgroup';
const V1_CPU = '/sys/fs/cgroup/cpu';
const PERIOD_US = 100_000;

function controller() {
  if (existsSync(join(V2_ROOT, 'cgroup.controllers'))) {
    const controllers = readFileSync(join(V2_ROOT, 'cgroup.controllers'), 'utf8');
    if (!controllers.split(/\s+/).includes('cpu')) return { why: 'cgroup v2 without the cpu controller' };
    return { version: 2, root: V2_ROOT };
  }
  if (existsSync(join(V1_CPU, 'cpu.cfs_quota_us'))) return { version: 1, root: V1_CPU };
  return { why: 'no cgroup cpu controller mounted' };
}

/** Why a CPU cap cannot be set here, or null when it can. */
export function cpuCapUnavailable() {
  if (process.getuid?.() !== 0) return 'capping CPU needs root';
  return controller().why || null;
}

function setQuota(c, dir, share) {
  const quota = Math.round(share * PERIOD_US);
  if (c.version === 2) {
    const sub = join(c.root, 'cgroup.subtree_control');
    if (!readFileSync(sub, 'utf8').split(/\s+/).includes('cpu')) writeFileSync(sub, '+cpu');
    writeFileSync(join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
  } else {
    writeFileSync(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
    writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
  }
}

/**
 * Moves the process tree under `rootPid` into a new cgroup capped at `share`
 * of a core; processes it starts later are born inside. Returns {release()},
 * which moves what is left back to the root group and removes the cgroup.
 */
export async function capTree(rootPid, share) {
  const c = controller();
  if (c.why || process.getuid?.() !== 0) throw new Error(`cannot cap CPU: ${cpuCapUnavailable()}`);
  const dir = join(c.root, `mado-bench-${process.pid}-${Date.now()}`);
  mkdirSync(dir);
  setQuota(c, dir, share);
  const move = (to) => {
    for (const pid of processTree(rootPid)) {
      try {
        writeFileSync(join(to, 'cgroup.procs'), String(pid));
      } catch {
        // ended meanwhile
      }
    }
  };
  // Twice: a process forked while the first pass ran is caught by the second.
  move(dir);
  await sleep(100);
  move(dir);
  return {
    dir,
    async release() {
      const left = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
      for (const pid of left) {
        try {
          writeFileSync(join(c.root, 'cgroup.procs'), pid);
        } catch {
          // ended meanwhile
        }
      }
      for (let i = 0; i < 20; i++) {
        try {
          rmdirSync(dir);
          return;
        } catch {
          await sleep(100);
        }
      }
    },
  };
}
