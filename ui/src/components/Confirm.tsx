import { useState, type ReactNode } from "react";
import { useTranslation } from "react-i18next";

/** A button that asks before it acts: the first press shows the question with Yes / Cancel. */
export function ConfirmButton({
  label,
  question,
  onConfirm,
  danger,
  disabled,
  testid,
}: {
  label: ReactNode;
  question: string;
  onConfirm: () => void;
  danger?: boolean;
  disabled?: boolean;
  testid?: string;
}) {
  const { t } = useTranslation();
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <button type="button" className={danger ? "danger" : undefined} disabled={disabled} data-testid={testid} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label={question}>
      <span>{question}</span>
      <button
        type="button"
        className={danger ? "danger" : "primary"}
        data-testid={testid ? `${testid}-yes` : undefined}
        autoFocus
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
      >
        {t("common.yes")}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        {t("common.cancel")}
      </button>
    </span>
  );
}
