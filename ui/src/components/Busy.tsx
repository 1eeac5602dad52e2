import { useTranslation } from "react-i18next";
import type { ErrorPayload } from "../bindings/ErrorPayload";
import { ErrorBox } from "./ErrorBox";

/** Messages are kept as functions, so that they follow a live language switch. */
export type Outcome = { busy: (() => string) | null; done: (() => string) | null; error: ErrorPayload | null };

/** Progress while an operation runs, then its success or error, said clearly. */
export function OperationStatus({ outcome, onDismiss }: { outcome: Outcome; onDismiss: () => void }) {
  const { t } = useTranslation();
  return (
    <div aria-live="polite">
      {outcome.busy && (
        <div className="busy" data-testid="op-busy">
          <div className="progress indeterminate" role="progressbar" aria-label={outcome.busy()} />
          <span className="muted small">{t("common.working", { what: outcome.busy() })}</span>
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
