import { useTranslation } from "react-i18next";
import type { DockerStatus } from "../bindings/DockerStatus";

/** The Docker connection at a glance; the reason and the fix on hover and for screen readers. */
export function DockerBadge({ status }: { status: DockerStatus | null }) {
  const { t } = useTranslation();
  if (!status || status.state === "connecting") {
    return (
      <span className="badge warn" data-testid="docker-status" data-state="connecting">
        {t("docker.connecting")}
      </span>
    );
  }
  if (status.state === "connected") {
    return (
      <span className="badge ok" data-testid="docker-status" data-state="connected" title={status.info.endpoint}>
        {t("docker.connected", { version: status.info.serverVersion ?? "" })}
      </span>
    );
  }
  const help = t("docker.unreachableHelp", { endpoint: status.endpoint, reason: status.reason });
  return (
    <span className="badge fail" data-testid="docker-status" data-state="unreachable" title={help} aria-label={help}>
      {t("docker.unreachable")}
    </span>
  );
}
