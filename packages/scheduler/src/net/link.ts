import { KilnError } from '@kiln/ir';
import type WebSocket from 'ws';
import type { FramePool } from './frame-pool.js';
import type { NetLog } from './log.js';
import { TAIL_FRAME, tailFrameLength } from './tail-frame.js';

/** 1 GiB: larger than any tensor kiln moves in one message, smaller than what would hurt a node. */
export const DEFAULT_MAX_FRAME_BYTES = 1 << 30;

/** What one ws.send carries: a message, or a fragment of one (`fin` on its last). */
interface Piece {
  readonly bytes: Uint8Array;
  readonly fin: boolean;
}

/** A frame of one part as one message, in fragments of at most CHUNK_BYTES. */
function fragments(frame: Uint8Array): Piece[] {
  const pieces: Piece[] = [];
  for (let at = 0; at < frame.byteLength || at === 0; at += CHUNK_BYTES) {
    const end = Math.min(frame.byteLength, at + CHUNK_BYTES);
    pieces.push({ bytes: frame.subarray(at, end), fin: end === frame.byteLength });
  }
  return pieces;
}

/** A frame of several parts (a head, then tensors): the head, then messages of at most CHUNK_BYTES. */
function streamed(parts: readonly Uint8Array[]): Piece[] {
  const pieces: Piece[] = [{ bytes: parts[0]!, fin: true }];
  for (const part of parts.slice(1))
    for (let at = 0; at < part.byteLength; at += CHUNK_BYTES)
      pieces.push({ bytes: part.subarray(at, Math.min(part.byteLength, at + CHUNK_BYTES)), fin: true });
  return pieces;
}

/** A message on its way to the socket: its pieces once encoded, and the next piece to hand over. */
interface Outgoing<Out> {
  readonly message: Out;
  pieces: Piece[] | null;
  next: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

export interface LinkOptions<In> {
  /** Who is at the other end, for log lines and errors ('worker:1 at 10.0.0.2:51234'). */
  readonly peer: string;
  /** Turns a frame into a message, or throws a KilnError('protocol') saying what was wrong. */
  readonly decode: (frame: Uint8Array) => In;
  /**
   * Ping interval; the peer is dead after `missedHeartbeats` intervals without a word from it.
   * Default 500 ms.
   */
  readonly heartbeatMillis?: number;
  /** Default 3. */
  readonly missedHeartbeats?: number;
  /**
   * False for a link whose peer's liveness another link watches (a worker process's run link,
   * whose device thread may be inside a long kernel): no pings, and silence is not death. A
   * closed socket still closes it at once. Default true.
   */
  readonly heartbeat?: boolean;
  /**
   * The largest frame the peer may send as several messages (a frame with tensors): its head
   * declares its length, which is checked against this before a byte of it is kept. Default 1 GiB.
   */
  readonly maxFrameBytes?: number;
  /**
   * Where the buffers of frames streamed over several messages come from: a pool the reader gives
   * them back to once done with a message's bytes (see FramePool). Default: a fresh buffer each.
   */
  readonly frames?: FramePool;
  readonly log: NetLog;
}

/**
 * The most bytes one WebSocket message (or fragment) carries. A frame with tensors goes as its
 * head, then its tensors' bytes in messages of at most this size, sent as they lie (never joined
 * into one buffer first) and waiting for the socket to drain between them: a large tensor never
 * sits in memory twice over, and a slow reader slows the sender instead of growing its buffers.
 * The receiver copies each message into the one buffer the head announced, once.
 *
 * 32 KiB, half of what one socket read brings (64 KiB): ws hands over a message that lies
 * within one read as a view of it, and joins one that spans reads into a fresh buffer of its
 * own. At 1 MiB every message was joined so, an extra copy and an extra 1 MiB of memory per MiB
 * received for the garbage collector; the 1 MiB all-reduce measured 4.5-5.7 ms on 2 workers and
 * 9.8-14.5 on 4 with 32 KiB, against 7.3-7.9 and 20-24 with 1 MiB (16 KiB: the same as 32).
 */
export const CHUNK_BYTES = 32 * 1024;
/** Bytes queued on the socket past which a sender waits (the socket's high-water mark). */
export const HIGH_WATER_BYTES = 4 << 20;

/**
 * One WebSocket carrying kiln protocol frames: binary msgpack, one message per frame, decoded and
 * validated on arrival (a text frame, an undecodable or invalid frame closes the link with a log
 * line naming the peer), heartbeats both ways, and back-pressure on send. A link closes once, with
 * a reason the owner receives: the peer closed, stopped answering, broke the protocol, or we did.
 */
export class FrameLink<In, Out> {
  /** Until a handler is set, messages wait here: one can arrive in the same tick as the upgrade. */
  private messageHandler: ((message: In) => void) | null = null;
  private early: In[] = [];
  private closeHandlers: ((reason: string) => void)[] = [];
  private closedReason: string | null = null;
  /** When the peer last showed it is alive (a pong, or any frame), in performance.now() ms. */
  private lastHeard = performance.now();
  private lastPing = 0;
  private readonly heartbeat: ReturnType<typeof setInterval> | undefined;
  private drainWaiters: (() => void)[] = [];
  private readonly writeWaiters = new Set<() => void>();
  /** Messages not yet handed to the socket in full, oldest first (see pump). */
  private readonly outbox: Outgoing<Out>[] = [];
  private pumping = false;
  private corked = false;
  /** A frame arriving over several messages: its buffer, and how much of it has come. */
  private streaming: { readonly frame: Uint8Array; filled: number } | null = null;
  /**
   * Resolves once the socket itself has closed: after the closing handshake, or at once on a drop.
   * `onClose` runs earlier, as soon as the link is closing; this is when the peer has its reason.
   */
  readonly socketClosed: Promise<void>;
  /** Message bytes sent and received over this link (frames, not counting WebSocket headers). */
  bytesSent = 0;
  bytesReceived = 0;

  constructor(
    private readonly ws: WebSocket,
    /** A message as one frame, or as the parts of one frame (sent in order, not joined). */
    private readonly encode: (message: Out) => Uint8Array | readonly Uint8Array[],
    private readonly options: LinkOptions<In>,
  ) {
    const interval = options.heartbeatMillis ?? 500;
    const missed = options.missedHeartbeats ?? 3;
    this.socketClosed = new Promise((resolve) => ws.once('close', () => resolve()));
    ws.on('message', (data, isBinary) => {
      this.lastHeard = performance.now();
      this.receive(data, isBinary);
    });
    ws.on('pong', () => {
      this.lastHeard = performance.now();
    });
    ws.on('close', (code, reason) =>
      this.finish(
        `closed by ${options.peer} (${code}${reason.length ? `: ${reason.toString().slice(0, 120)}` : ''})`,
      ),
    );
    ws.on('error', (e) => {
      const reason = `connection to ${options.peer} failed: ${e.message}`;
      options.log(reason);
      this.finish(reason);
    });
    this.heartbeat = options.heartbeat === false ? undefined : this.beat(interval, missed);
  }

  /**
   * Pings go every interval; silence is checked five times as often, so a peer is declared dead
   * within a fifth of an interval of `missed` intervals without a word from it, whatever the
   * phase of the pings when it went silent (counting unanswered pings instead can add a whole
   * interval: up to 2 s by default, where this is 1.5 to 1.6 s).
   */
  private beat(interval: number, missed: number): ReturnType<typeof setInterval> {
    const { ws, options } = this;
    const tick = Math.max(1, interval / 5);
    let lastTick = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      // A tick this late means this thread was not running (a long synchronous task, a process
      // stopped or starved of CPU): the peer's frames may be waiting unread behind this timer, so
      // the time this side could not listen is not counted as the peer's silence.
      const late = now - lastTick - tick;
      lastTick = now;
      if (late > interval) this.lastHeard = Math.min(now, this.lastHeard + late);
      if (now - this.lastHeard >= missed * interval) {
        const reason = `${options.peer} answered no heartbeat for ${missed * interval} ms (heartbeatMillis ${interval} x ${missed})`;
        options.log(reason);
        this.finish(reason);
        ws.terminate();
        return;
      }
      if (now - this.lastPing >= interval) {
        this.lastPing = now;
        ws.ping();
      }
    }, tick);
    // A heartbeat must not keep a process alive that has nothing else to do.
    timer.unref?.();
    return timer;
  }

  get peer(): string {
    return this.options.peer;
  }

  /** The local address of the connection: the interface this side reaches its peer through. */
  get localAddress(): string | undefined {
    const socket = (this.ws as unknown as { _socket?: { localAddress?: string } })._socket;
    const address = socket?.localAddress;
    // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
    return address?.startsWith('::ffff:') ? address.slice(7) : address;
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  onMessage(handler: (message: In) => void): void {
    this.messageHandler = handler;
    const early = this.early;
    this.early = [];
    for (const m of early) handler(m);
  }

  /** Called once when the link closes, for whatever reason (at once if it has already). */
  onClose(handler: (reason: string) => void): void {
    if (this.closedReason !== null) handler(this.closedReason);
    else this.closeHandlers.push(handler);
  }

  /**
   * Sends a message; resolves once the socket has taken all its bytes (written them, or failed),
   * waiting while the socket is full: the caller may then reuse the memory it sent, which ws and
   * the socket hold by reference until then. Sends go out in call order, each message whole: the
   * fragments of two messages never mix.
   *
   * A message goes to the socket at once, in this call, unless messages before it are still
   * waiting for the socket to drain. The socket is corked until the end of the tick, so what one
   * tick sends (a step's partitions to one worker, the replies a worker finished together) leaves
   * in one write: on loopback each write is a system call that also wakes the reader, and on a
   * small machine those, not the bytes, were most of what a step of small messages cost.
   */
  send(message: Out): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.outbox.push({ message, pieces: null, next: 0, resolve, reject });
      this.pump();
    });
  }

  /**
   * Hands queued messages to the socket, in order, until they are all handed or the socket is
   * full; a full socket resumes the pump once it drains. A message that cannot be encoded is
   * refused alone; a closed link refuses everything queued.
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    this.corkForTick();
    for (;;) {
      const head = this.outbox[0];
      if (!head) break;
      if (this.closedReason !== null) {
        this.outbox.shift();
        head.reject(new KilnError('worker', `cannot send to ${this.options.peer}: ${this.closedReason}`));
        continue;
      }
      if (head.pieces === null) {
        try {
          const encoded = this.encode(head.message);
          const parts = encoded instanceof Uint8Array ? [encoded] : encoded;
          this.bytesSent += parts.reduce((n, p) => n + p.byteLength, 0);
          head.pieces = parts.length === 1 ? fragments(parts[0]!) : streamed(parts);
        } catch (e) {
          this.outbox.shift();
          head.reject(e);
          continue;
        }
      }
      if (this.ws.bufferedAmount > HIGH_WATER_BYTES) {
        void this.drained().then(() => {
          this.pumping = false;
          this.pump();
        });
        return;
      }
      const { bytes, fin } = head.pieces[head.next++]!;
      const options = { binary: true, compress: false, fin };
      if (head.next < head.pieces.length) {
        this.ws.send(bytes, options, () => this.wakeIfDrained());
        continue;
      }
      // ws calls back in order, once the socket has taken each piece or failed; a link that
      // closes first lets the waiter go too (the memory is no longer the socket's concern).
      this.outbox.shift();
      const resolve = head.resolve;
      this.writeWaiters.add(resolve);
      this.ws.send(bytes, options, () => {
        this.writeWaiters.delete(resolve);
        this.wakeIfDrained();
        resolve();
      });
    }
    this.pumping = false;
  }

  /** Corks the socket until the end of this tick (see send), once per tick. */
  private corkForTick(): void {
    const socket = (this.ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    if (this.corked || !socket) return;
    this.corked = true;
    socket.cork();
    // A tick queued from a promise callback runs once the promise callbacks have all run, so the
    // replies a worker finishes in one pass go out together too.
    process.nextTick(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  /** Closes the link (a normal close: the peer sees the code and reason). */
  close(reason: string, code = 1000): void {
    if (this.closedReason === null) {
      this.finish(reason);
      this.ws.close(code, reason.slice(0, 120));
    }
  }

  /** Drops the connection without a closing handshake, as a lost machine would. */
  terminate(reason: string): void {
    this.finish(reason);
    this.ws.terminate();
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.closedReason !== null) return;
    try {
      if (!isBinary)
        throw new KilnError('protocol', 'protocol: a text frame (kiln speaks binary msgpack frames)');
      const bytes = Array.isArray(data)
        ? new Uint8Array(Buffer.concat(data))
        : data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      this.bytesReceived += bytes.byteLength;
      const frame = this.assemble(bytes);
      if (frame === null) return;
      const message = this.options.decode(frame);
      if (this.messageHandler) this.messageHandler(message);
      else this.early.push(message);
    } catch (e) {
      // A peer that breaks the protocol is dropped; the process goes on serving the others.
      const reason = `refused a frame from ${this.options.peer}: ${e instanceof Error ? e.message : String(e)}`;
      this.options.log(reason);
      this.close(reason, 1008);
    }
  }

  /**
   * The frame a message completes: the message itself, or the last piece of a frame streamed
   * over several (see CHUNK_BYTES), or null while one is still arriving. A streamed frame's
   * length comes from its head and is checked before its buffer is taken; a piece that would run
   * past it is refused. The buffer is memory the peer's bytes fill in full, so it is not zeroed.
   */
  private assemble(bytes: Uint8Array): Uint8Array | null {
    const s = this.streaming;
    if (s) {
      if (bytes.byteLength > s.frame.byteLength - s.filled)
        throw new KilnError(
          'protocol',
          `protocol: a streamed frame ran past the ${s.frame.byteLength} bytes its head declared`,
        );
      s.frame.set(bytes, s.filled);
      s.filled += bytes.byteLength;
      if (s.filled < s.frame.byteLength) return null;
      this.streaming = null;
      return s.frame;
    }
    if (bytes[0] !== TAIL_FRAME) return bytes;
    const length = tailFrameLength(bytes);
    // A whole tail frame in one message (the decoder checks that its bytes add up).
    if (length <= bytes.byteLength) return bytes;
    const max = this.options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (length > max)
      throw new KilnError(
        'protocol',
        `protocol: a streamed frame of ${length} bytes exceeds the ${max}-byte limit`,
      );
    const frame =
      this.options.frames?.take(length) ?? new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
    frame.set(bytes);
    this.streaming = { frame, filled: bytes.byteLength };
    return null;
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private wakeIfDrained(): void {
    if (this.ws.bufferedAmount > HIGH_WATER_BYTES / 2 && this.closedReason === null) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private finish(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    clearInterval(this.heartbeat);
    const waiters = [...this.drainWaiters, ...this.writeWaiters];
    this.drainWaiters = [];
    this.writeWaiters.clear();
    for (const w of waiters) w();
    const handlers = this.closeHandlers;
    this.closeHandlers = [];
    for (const h of handlers) h(reason);
  }
}
