/**
 * One Socket.IO connection per signed-in session, shared by every live screen.
 *
 * - Authenticates with the current access token on every (re)connection attempt (`auth` as a
 *   function). When the server refuses it (expired), the pair is refreshed through the API
 *   client and the socket reconnects with the fresh token; a refused refresh ends the session
 *   the same way a REST 401 does.
 * - Rooms are reference counted (`useRoom`, `useRooms`): joined when the first screen asks,
 *   left when the last one stops, and joined again after every reconnect.
 * - `useSocketEvent` subscribes a handler to one server event for the life of a component.
 * - After a reconnect, `onReconnect` listeners run (screens reload over REST what they missed).
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { io, type Socket } from 'socket.io-client';

import { api } from '../api/client';

export type SocketStatus = 'connecting' | 'connected' | 'disconnected';

interface SocketApi {
  status: SocketStatus;
  socket: Socket | null;
  acquireRoom(room: string): () => void;
  /** Fired after a reconnect (not the first connect). */
  onReconnect(fn: () => void): () => void;
  emit(event: string, payload: unknown): void;
}

const SocketContext = createContext<SocketApi | null>(null);

export function SocketProvider({ children, url }: { children: ReactNode; url?: string }) {
  const [status, setStatus] = useState<SocketStatus>('connecting');
  const [socket, setSocket] = useState<Socket | null>(null);
  const rooms = useRef(new Map<string, number>());
  const reconnectListeners = useRef(new Set<() => void>());
  const socketRef = useRef<Socket | null>(null);

  useEffect(() => {
    if (!api.tokens.get()) {
      setStatus('disconnected');
      return;
    }
    // The token the last handshake was made with: when it was refused and another request
    // (or tab) has refreshed the pair since, reconnecting is enough; no second refresh.
    let usedToken = '';
    const opts = {
      auth: (cb: (data: object) => void) => {
        usedToken = api.tokens.get()?.access_token ?? '';
        cb({ token: usedToken });
      },
      reconnectionDelayMax: 10_000,
    };
    // Same origin unless told otherwise (the Vite dev server proxies /socket.io).
    const s = url ? io(url, opts) : io(opts);
    let everConnected = false;
    let refusals = 0;
    let retry: ReturnType<typeof setTimeout> | undefined;

    s.on('connect', () => {
      refusals = 0;
      setStatus('connected');
      for (const room of rooms.current.keys()) s.emit('join', { room });
      if (everConnected) for (const fn of reconnectListeners.current) fn();
      everConnected = true;
    });
    s.on('disconnect', (reason) => {
      setStatus('disconnected');
      // The server closed us on purpose (e.g. session revoked): try again with a fresh token.
      if (reason === 'io server disconnect') retry = setTimeout(() => s.connect(), 2_000);
    });
    s.io.on('reconnect_attempt', () => setStatus('connecting'));
    s.on('connect_error', (err) => {
      setStatus('disconnected');
      // `active` stays true while the client retries transport errors by itself; false means
      // the server refused the handshake (a bad or expired token).
      if (s.active) return;
      refusals++;
      const delay = Math.min(30_000, 1_000 * 2 ** Math.min(refusals, 5));
      void (async () => {
        const current = api.tokens.get()?.access_token;
        if (/token/i.test(err.message) && refusals <= 3 && (!current || current === usedToken)) {
          const pair = await api.refresh();
          if (!pair) return; // the session is over; the API client already sent us to /login
        }
        retry = setTimeout(
          () => {
            setStatus('connecting');
            s.connect();
          },
          refusals <= 1 ? 0 : delay,
        );
      })();
    });

    const onVisibility = () => {
      if (s.connected) s.emit('presence', { status: document.visibilityState === 'hidden' ? 'away' : 'online' });
    };
    document.addEventListener('visibilitychange', onVisibility);
    socketRef.current = s;
    setSocket(s);
    return () => {
      socketRef.current = null;
      clearTimeout(retry);
      document.removeEventListener('visibilitychange', onVisibility);
      s.removeAllListeners();
      s.disconnect();
      setSocket(null);
    };
  }, [url]);

  // Stable functions (they read the socket from a ref) so rooms are not left and re-joined
  // whenever the connection status changes.
  const acquireRoom = useCallback((room: string) => {
    const n = rooms.current.get(room) ?? 0;
    rooms.current.set(room, n + 1);
    const s = socketRef.current;
    if (n === 0 && s?.connected) s.emit('join', { room });
    return () => {
      const left = (rooms.current.get(room) ?? 1) - 1;
      if (left > 0) {
        rooms.current.set(room, left);
        return;
      }
      rooms.current.delete(room);
      const cur = socketRef.current;
      if (cur?.connected) cur.emit('leave', { room });
    };
  }, []);
  const onReconnect = useCallback((fn: () => void) => {
    reconnectListeners.current.add(fn);
    return () => {
      reconnectListeners.current.delete(fn);
    };
  }, []);
  const emit = useCallback((event: string, payload: unknown) => {
    const s = socketRef.current;
    if (s?.connected) s.emit(event, payload);
  }, []);

  const value = useMemo<SocketApi>(
    () => ({ status, socket, acquireRoom, onReconnect, emit }),
    [status, socket, acquireRoom, onReconnect, emit],
  );

  return <SocketContext.Provider value={value}>{children}</SocketContext.Provider>;
}

export function useSocket(): SocketApi {
  const ctx = useContext(SocketContext);
  if (!ctx) throw new Error('useSocket() outside <SocketProvider>');
  return ctx;
}

/** Keeps the socket in `rooms` while the component is mounted. */
export function useRooms(rooms: string[]): void {
  const { acquireRoom } = useSocket();
  const key = [...new Set(rooms)].sort().join('|');
  useEffect(() => {
    if (!key) return;
    const releases = key.split('|').map((r) => acquireRoom(r));
    return () => releases.forEach((release) => release());
  }, [key, acquireRoom]);
}

/** Calls `handler(data, envelope)` for every `event` while mounted (latest handler, no resubscribe). */
export function useSocketEvent<T = Record<string, unknown>>(
  event: string | string[],
  handler: (data: T, name: string) => void,
): void {
  const { socket } = useSocket();
  const latest = useRef(handler);
  latest.current = handler;
  const names = Array.isArray(event) ? event.join('|') : event;
  useEffect(() => {
    if (!socket) return;
    const offs = names.split('|').map((name) => {
      const fn = (payload: { data?: T } | T) => {
        // Domain events arrive as `{ id, type, time, data }`; `typing` is a bare object.
        const p = payload as { data?: T; type?: string };
        latest.current(p && typeof p === 'object' && 'data' in p && 'type' in p ? (p.data as T) : (payload as T), name);
      };
      socket.on(name, fn);
      return () => socket.off(name, fn);
    });
    return () => offs.forEach((off) => off());
  }, [socket, names]);
}
