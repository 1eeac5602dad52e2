import { useTranslation } from "react-i18next";
import type { ErrorPayload } from "../bindings/ErrorPayload";

/** A failed command: the translated sentence that says what to do, and the details. */
export function ErrorBox({ error, onDismiss }: { error: ErrorPayload; onDismiss?: () => void }) {
  const { t } = useTranslation();
  const key = `errors.${error.code}`;
  const headline = t(key, { defaultValue: t("errors.internal") });
  return (
    <div className="error-box" role="alert" data-code={error.code}>
      <strong>{headline}</strong>
      <details>
        <summary>{t("errors.details")}</summary>
        <p>{error.message}</p>
      </details>
      {onDismiss && (
        <button type="button" className="link" onClick={onDismiss}>
          {t("common.dismiss")}
        </button>
      )}
    </div>
  );
}
