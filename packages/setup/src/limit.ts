/** Runs `task` when one of the limiter's slots is free. */
export type Limit = <T>(task: () => Promise<T>) => Promise<T>;

/**
 * A limiter allowing at most `concurrency` tasks at once; tasks start in call order (FIFO),
 * so work queued first finishes first when tasks take equally long.
 */
export function createLimit(concurrency: number): Limit {
  const slots = Math.max(1, Math.floor(concurrency));
  let running = 0;
  const waiting: Array<() => void> = [];

  const release = () => {
    running--;
    const next = waiting.shift();
    if (next) {
      running++;
      next();
    }
  };

  return <T>(task: () => Promise<T>): Promise<T> => {
    const start = (): Promise<T> => {
      let result: Promise<T>;
      try {
        result = task();
      } catch (error) {
        result = Promise.reject(error);
      }
      return result.finally(release);
    };
    if (running < slots) {
      running++;
      return start();
    }
    return new Promise<T>((resolve, reject) => {
      waiting.push(() => {
        start().then(resolve, reject);
      });
    });
  };
}
