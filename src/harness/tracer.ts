// The reply tracer of a mount, started and registered for the sweep. Apart from clause-mount.ts
// (which needs vitest) so that the platform facts (src/cli/run.ts imports them) can start one too.
import { register, traceCleanup } from '../mount/index.ts';
import { ReplyTracer, replyTracerStatus } from '../evidence/index.ts';
import { processStart } from '../mount/registry.ts';

/** A reply tracer registered for the sweep, or why there is none. */
export async function startTracer(): Promise<{ tracer: ReplyTracer | null; error: string | null }> {
  const st = replyTracerStatus();
  if (!st.available) return { tracer: null, error: st.reason! };
  let forget = () => {};
  try {
    traceCleanup('tracer spawn');
    const tracer = await ReplyTracer.start({ onStarted: (pid) => (forget = register({ kind: 'process', pid, start: processStart(pid) })) });
    traceCleanup(`tracer ${tracer.pid} ready`);
    const close = tracer.close.bind(tracer);
    tracer.close = () => {
      close();
      forget();
    };
    return { tracer, error: null };
  } catch (e) {
    forget();
    return { tracer: null, error: (e as Error).message };
  }
}
