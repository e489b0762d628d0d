import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { TickBatch, unbatch } from '../src/cluster/tick-batch.js';

/** Batches between threads, on a real MessageChannel (the same ports threads talk over). */

const channels: MessageChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) {
    c.port1.close();
    c.port2.close();
  }
});

function channel() {
  const c = new MessageChannel();
  channels.push(c);
  const posts: unknown[] = [];
  c.port2.on('message', (posted: unknown) => posts.push(posted));
  const arrived = () => posts.flatMap((p) => unbatch(p));
  const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
  return { batch: new TickBatch(c.port1), posts, arrived, settle };
}

describe('TickBatch', () => {
  it('posts what one tick sends as one message, in order, and the next tick apart', async () => {
    const { batch, posts, arrived, settle } = channel();
    for (let i = 0; i < 5; i++) batch.post({ t: 'ok', request: i });
    // Messages posted from promise callbacks of the same pass join the batch too.
    await Promise.resolve().then(() => batch.post({ t: 'ok', request: 5 }));
    await settle();
    batch.post({ t: 'ok', request: 6 });
    await settle();
    expect(posts).toHaveLength(2);
    expect(arrived()).toEqual(Array.from({ length: 7 }, (_, i) => ({ t: 'ok', request: i })));
    // A lone message goes as itself, not as a batch of one.
    expect(posts[1]).toEqual({ t: 'ok', request: 6 });
  });

  it('posts at once on flush, so a message sent after does not overtake the batch', async () => {
    const { batch, posts, arrived, settle } = channel();
    batch.post({ t: 'ok', request: 1 });
    batch.flush();
    batch.post({ t: 'ok', request: 2 });
    await settle();
    expect(posts).toHaveLength(2);
    expect(arrived()).toEqual([
      { t: 'ok', request: 1 },
      { t: 'ok', request: 2 },
    ]);
  });
});
