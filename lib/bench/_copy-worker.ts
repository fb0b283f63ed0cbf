// Worker for the memory-bandwidth probe: owns two shared buffers, touches them once, then copies on request.
declare const self: Worker;

let src: Uint8Array | undefined;
let dst: Uint8Array | undefined;

self.onmessage = (e: MessageEvent<{ init?: { src: SharedArrayBuffer; dst: SharedArrayBuffer }; copies?: number }>) => {
  if (e.data.init) {
    src = new Uint8Array(e.data.init.src);
    dst = new Uint8Array(e.data.init.dst);
    // touch every page now: first-touch page faults are expensive and must not be timed
    src.fill(0x5a);
    dst.fill(0xa5);
    postMessage({ ready: true });
    return;
  }
  const n = e.data.copies ?? 1;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) dst!.set(src!);
  postMessage({ ms: performance.now() - t0 });
};
