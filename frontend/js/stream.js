// The live stream of a run (Server-Sent Events): `status`, `metrics`, `event` and `end`.
// EventSource reconnects by itself and resumes from the last message id (Last-Event-ID, a cursor);
// the stream is closed on `end` so that it does not reconnect to a finished run.

const EVENTS = ["status", "metrics", "event", "end"];

// handlers: {status, metrics, event, end, connection(state)}; returns {close()}.
export function openStream(url, handlers) {
  const source = new EventSource(url);
  handlers.connection?.("connecting");
  for (const type of EVENTS) {
    source.addEventListener(type, (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (error) {
        console.error(`stream: bad ${type} message`, message.data, error);
        return;
      }
      if (type === "end") source.close();
      handlers[type]?.(data);
    });
  }
  source.addEventListener("open", () => handlers.connection?.("live"));
  source.addEventListener("error", () => {
    // CONNECTING: the browser retries by itself; CLOSED: it gave up (e.g. the run is gone).
    if (source.readyState === EventSource.CLOSED) handlers.connection?.("closed");
    else if (source.readyState === EventSource.CONNECTING) handlers.connection?.("reconnecting");
  });
  return { close: () => source.close() };
}
