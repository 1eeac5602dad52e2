import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { api } from "../api";
import type { ErrorPayload } from "../bindings/ErrorPayload";
import { ErrorBox } from "./ErrorBox";

/** Messages are kept as functions, so that they follow a live language switch. */
export type Outcome = { busy: (() => string) | null; done: (() => string) | null; error: ErrorPayload | null };

/** Progress while an operation runs, then its success or error, said clearly. */
export function OperationStatus({ outcome, onDismiss }: { outcome: Outcome; onDismiss: () => void }) {
  const { t } = useTranslation();
  // The step the service just wrote for the operation under way (one runs per page at a time).
  const [step, setStep] = useState<string | null>(null);
  const busy = outcome.busy !== null;
  useEffect(() => {
    setStep(null);
    if (!busy) return;
    const un = api.onProgress((p) => setStep(p.step));
    return () => void un.then((f) => f());
  }, [busy]);
  return (
    <div aria-live="polite">
      {outcome.busy && (
        <div className="busy" data-testid="op-busy">
          <div className="progress indeterminate" role="progressbar" aria-label={outcome.busy()} />
          <span className="muted small">{t("common.working", { what: outcome.busy() })}</span>
          {step && (
            <span className="muted small" data-testid="op-step">
              {" "}
              {t(`progress.${step}`, { defaultValue: step })}
            </span>
          )}
        </div>
      )}
      {outcome.done && !outcome.busy && (
        <p className="ok-text" role="status" data-testid="op-done">
          {outcome.done()}
        </p>
      )}
      {outcome.error && <ErrorBox error={outcome.error} onDismiss={onDismiss} />}
    </div>
  );
}
