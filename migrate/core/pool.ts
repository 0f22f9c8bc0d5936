/**
 * The one worker pool: `fn` over `items` with at most `limit` running at once, each started in the
 * order of `items`. The first failure (or an abort of `signal`) starts no more items; the call waits
 * for the running ones, so that nothing they use is closed under them, then throws that failure.
 */
export async function forEachConcurrently<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const index = next++;
      try {
        options.signal?.throwIfAborted();
        await fn(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.error;
}
