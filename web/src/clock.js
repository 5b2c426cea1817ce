// Timing, and giving the page a chance to paint between decoding steps.

export const now = () => (globalThis.performance ? performance.now() : Date.now());

// Let the page paint the words produced so far: wait for the next frame (or 50 ms, for hidden pages,
// which get no frames). Promise continuations alone never yield, and a chain of plain tasks yields to
// rendering only every ~120 ms in Chromium.
export function yieldToEventLoop() {
  if (typeof requestAnimationFrame !== 'function') return new Promise((resolve) => setTimeout(resolve, 0));
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 50);
    requestAnimationFrame(() => { clearTimeout(timer); setTimeout(resolve, 0); });
  });
}
