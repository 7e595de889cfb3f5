// CONTROL_BASE_URL checks shared by config validation and `doctor`: each mistake from the
// operators' troubleshooting page (no scheme, trailing slash, an SSH alias) gets its own sentence.

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/** Why `value` is not a usable control-plane base URL, or undefined when it is. */
export function controlUrlProblem(value: string): string | undefined {
  if (value === '') return 'expected a URL such as https://aegis.example.com';
  if (!SCHEME.test(value)) {
    if (/^[^\s/@]+@[^\s/]+$/.test(value) || /^[^\s/:]+:[^\d/]/.test(value)) {
      return `"${value}" looks like an SSH alias, not a URL: use the routable host name with its scheme, e.g. https://build-server.example.com`;
    }
    return `"${value}" has no scheme: write http://${value.replace(/\/+$/, '')} or https://${value.replace(/\/+$/, '')}`;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `"${value}" is not a valid URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `"${value}" uses ${url.protocol.slice(0, -1)}://; expected http:// or https:// (the agent derives ws:// / wss:// itself)`;
  }
  if (value.endsWith('/'))
    return `"${value}" has a trailing slash: write ${value.replace(/\/+$/, '')}`;
  if (url.search !== '' || url.hash !== '')
    return `"${value}" has a query or fragment: give the base URL only`;
  if (url.username !== '' || url.password !== '') {
    return `"${value}" carries credentials: put the secret in AGENT_AUTH_SECRET, not the URL`;
  }
  return undefined;
}

/** The agent's WebSocket URL (PROTOCOL §1): http→ws, https→wss, path /agent/v1/ws. */
export function controlWsUrl(base: string): string {
  const url = new URL(base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/agent/v1/ws`;
  return url.toString();
}
