import { useCallback, useEffect, useState, type ReactNode } from "react";
import { useTranslation } from "react-i18next";
import { api, toErrorPayload } from "../api";
import type { Caller } from "../bindings/Caller";
import type { ErrorPayload } from "../bindings/ErrorPayload";
import { useSettings } from "../settings";

/**
 * The app is a client of GPU Deck's service. Until the service answers and says this user may
 * use it, a screen of its own says what is wrong and what to do, instead of every page failing.
 */
export function ServiceGate({ children }: { children: ReactNode }) {
  const { t } = useTranslation();
  const [me, setMe] = useState<Caller | null>(null);
  const [error, setError] = useState<ErrorPayload | null>(null);
  const [checking, setChecking] = useState(true);
  const { reload } = useSettings();
  const [osUser, setOsUser] = useState<string | null>(null);
  useEffect(() => {
    api.osUser().then(setOsUser, () => setOsUser(null));
  }, []);
  const check = useCallback(() => {
    setChecking(true);
    api
      .whoami()
      .then((c) => {
        setMe(c);
        setError(null);
        reload();
      })
      .catch((e) => {
        setMe(null);
        setError(toErrorPayload(e));
      })
      .finally(() => setChecking(false));
  }, [reload]);
  useEffect(() => {
    check();
    // The service went away or came back: check again.
    const un = api.onServiceStatus(() => check());
    return () => void un.then((f) => f());
  }, [check]);

  if (me && me.role !== "none") return <>{children}</>;
  if (!me && !error) {
    return (
      <div className="gate" data-testid="service-gate">
        <p>{t("gate.checking")}</p>
      </div>
    );
  }
  const unreachable = error?.code === "service_unreachable";
  const user = me?.user ?? osUser ?? "$USER";
  return (
    <div className="gate" role="alert" data-testid="service-gate" data-code={error?.code ?? "not_in_group"}>
      <img src="/icon.svg" alt="" width={48} height={48} />
      <h1>{t("gate.title")}</h1>
      <p>{unreachable ? t("gate.unreachable") : t("gate.denied", { user })}</p>
      <p>{unreachable ? t("gate.unreachableFix") : t("gate.deniedFix")}</p>
      <pre className="mono" data-testid="gate-fix">
        {unreachable ? "sudo systemctl start gpudeck" : `sudo usermod -aG gpudeck ${user}`}
      </pre>
      {error && (
        <details>
          <summary>{t("errors.details")}</summary>
          <p>{error.message}</p>
        </details>
      )}
      <button type="button" onClick={check} disabled={checking} data-testid="gate-retry">
        {t("gate.retry")}
      </button>
    </div>
  );
}
