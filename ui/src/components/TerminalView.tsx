import { useEffect, useRef } from "react";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import { api } from "../api";

/** An interactive shell in a replicaSet's container (xterm.js over a Tauri channel). */
export function TerminalView({ name, onError }: { name: string; onError: (e: unknown) => void }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const term = new Terminal({ fontSize: 13, convertEol: false, cursorBlink: true, theme: { background: "#0d1411" } });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    fit.fit();
    let id: number | null = null;
    let closed = false;
    api
      .terminalOpen(name, (text) => term.write(text))
      .then((tid) => {
        if (closed) return void api.terminalClose(tid);
        id = tid;
        void api.terminalResize(tid, term.cols, term.rows);
        term.focus();
      })
      .catch(onError);
    const input = term.onData((d) => id !== null && void api.terminalInput(id, d).catch(onError));
    const ro = new ResizeObserver(() => {
      fit.fit();
      if (id !== null) void api.terminalResize(id, term.cols, term.rows);
    });
    ro.observe(el);
    return () => {
      closed = true;
      ro.disconnect();
      input.dispose();
      if (id !== null) void api.terminalClose(id);
      term.dispose();
    };
  }, [name, onError]);
  return <div className="terminal" ref={box} data-testid="rs-terminal" />;
}

/** The container's log, followed live. */
export function LogView({ name, onError }: { name: string; onError: (e: unknown) => void }) {
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    let id: number | null = null;
    let closed = false;
    if (pre.current) pre.current.textContent = "";
    api
      .logsFollow(name, (chunk) => {
        const p = pre.current;
        if (!p) return;
        const atEnd = p.scrollTop + p.clientHeight >= p.scrollHeight - 4;
        p.textContent = (p.textContent ?? "") + chunk;
        if (atEnd) p.scrollTop = p.scrollHeight;
      })
      .then((sid) => (closed ? void api.streamClose(sid) : (id = sid)))
      .catch(onError);
    return () => {
      closed = true;
      if (id !== null) void api.streamClose(id);
    };
  }, [name, onError]);
  return <pre className="console" ref={pre} data-testid="rs-logs" />;
}
