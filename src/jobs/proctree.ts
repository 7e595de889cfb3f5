// Finding and killing everything a build started. node-pty makes the build a session leader;
// ninja then puts each command into a process group of its own (so a kill(-pgid) of the
// leader's group misses them), but they all stay in the leader's session. So "the build" is
// every process of that session plus every descendant of the leader, read from /proc.
import fs from 'node:fs';

interface ProcStat {
  pid: number;
  ppid: number;
  pgrp: number;
  session: number;
  state: string;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return {
      pid,
      state: rest[0] ?? '?',
      ppid: Number(rest[1]),
      pgrp: Number(rest[2]),
      session: Number(rest[3]),
    };
  } catch {
    return undefined;
  }
}

function allProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (st && st.state !== 'Z') out.push(st);
  }
  return out;
}

/** Live (non-zombie) pids of the build whose session leader was `sid`, excluding this process. */
export function buildProcesses(sid: number): number[] {
  const procs = allProcesses();
  const members = new Set(
    procs.filter((p) => p.session === sid || p.pgrp === sid).map((p) => p.pid),
  );
  // Descendants that left the session (setsid) are still found through their parents.
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (!members.has(p.pid) && (members.has(p.ppid) || p.ppid === sid)) {
        members.add(p.pid);
        grew = true;
      }
    }
  }
  members.delete(process.pid);
  return [...members].sort((a, b) => a - b);
}

/** Signal every process of the build; returns how many were signalled. */
export function signalBuild(sid: number, signal: NodeJS.Signals): number {
  let n = 0;
  try {
    process.kill(-sid, signal);
  } catch {
    // The leader's group may be gone already; its session's other groups may not.
  }
  for (const pid of buildProcesses(sid)) {
    try {
      process.kill(pid, signal);
      n++;
    } catch {
      // Exited in between.
    }
  }
  return n;
}

/** This boot's id: a recorded session id means nothing after a reboot. */
export function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}
