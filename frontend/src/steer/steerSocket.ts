import { backoffDelay } from "./backoffDelay";
import type { ServerFrame } from "./steerTypes";

export type SocketStatus = "connecting" | "open" | "closed";

export interface SteerSocketOptions {
  /** Called with every parsed server frame. */
  onFrame: (frame: ServerFrame) => void;
  /** Called on each (re)connection, once the socket is open: (re)send the current request here. */
  onOpen?: (reconnected: boolean) => void;
  onStatus?: (status: SocketStatus) => void;
  /** @default globalThis.WebSocket */
  WebSocket?: typeof WebSocket;
  /** @default backoffDelay */
  delay?: (attempt: number) => number;
}

/**
 * A websocket to `url` that reconnects with backoff until closed. Frames that are not JSON
 * objects with a `type` are dropped (logged), never passed on.
 */
export class SteerSocket {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private opened = false;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly url: string;
  private readonly o: SteerSocketOptions;

  constructor(url: string, options: SteerSocketOptions) {
    this.url = url;
    this.o = options;
    this.connect();
  }

  get isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === 1;
  }

  /** Sends a message if the socket is open; returns whether it was sent. */
  send(message: object): boolean {
    if (!this.isOpen) return false;
    this.ws!.send(JSON.stringify(message));
    return true;
  }

  close(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.ws?.close();
  }

  private connect(): void {
    const Ctor = this.o.WebSocket ?? globalThis.WebSocket;
    this.o.onStatus?.("connecting");
    const ws = new Ctor(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.o.onStatus?.("open");
      const reconnected = this.opened;
      this.opened = true;
      this.o.onOpen?.(reconnected);
    };
    ws.onmessage = (event: MessageEvent) => {
      let frame: unknown;
      try {
        frame = JSON.parse(String(event.data));
      } catch {
        console.warn("steer: dropped a frame that is not JSON");
        return;
      }
      if (typeof frame === "object" && frame !== null && typeof (frame as { type?: unknown }).type === "string") {
        this.o.onFrame(frame as ServerFrame);
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.o.onStatus?.("closed");
      if (this.stopped) return;
      const wait = (this.o.delay ?? backoffDelay)(this.attempt++);
      this.timer = setTimeout(() => this.connect(), wait);
    };
  }
}
