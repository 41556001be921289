/**
 * `--record-trace FILE` for the commands that serve a VM's disk (export,
 * source): the recorder on the wall clock, its drops as log warnings, and
 * what the trace holds printed when it closes.
 */
import type { Disk } from '../block/disk.ts';
import { RecordingDisk } from '../block/filters/recording.ts';
import { realClock } from '../util/clock.ts';
import { log } from '../util/log.ts';
import { TraceRecorder } from '../workload/trace-recorder.ts';

export interface OpenTrace {
  recorder: TraceRecorder;
  /** The VM-facing disk, recording. */
  wrap: (disk: Disk) => Disk;
}

export async function openTrace(file: string): Promise<OpenTrace> {
  const recorder = await TraceRecorder.open(file, {
    clock: realClock,
    onDrop: (dropped) => log.warn({ dropped, file }, 'trace recorder: the trace file falls behind; requests dropped from the trace (the VM is not held)'),
  });
  return { recorder, wrap: (disk) => new RecordingDisk(disk, recorder, () => realClock.now()) };
}

/** Ends the trace file and says what it holds (a `trace` event with --json). */
export async function closeTrace(t: OpenTrace, file: string, json: boolean | undefined): Promise<void> {
  await t.recorder.close();
  const s = t.recorder.stats();
  if (json) process.stdout.write(JSON.stringify({ event: 'trace', file, ...s }) + '\n');
  else process.stdout.write(`flimcd: trace ${file}: ${s.recorded} requests recorded, ${s.dropped} dropped${s.truncated ? `, ${s.truncated} zero requests truncated` : ''}\n`);
}
