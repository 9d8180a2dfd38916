// A component that renders again only when one of its props changes identity: the review list
// re-renders the two rows a keyboard step touches, not every row in view. (preact/compat's
// `memo` does the same, but would bring all of compat into the first load.)
import { Component, type ComponentType, type FunctionComponent } from "preact";

export function memo<P extends object>(render: FunctionComponent<P>): ComponentType<P> {
  class Memo extends Component<P> {
    shouldComponentUpdate(next: P): boolean {
      const now = this.props as Record<string, unknown>;
      const then = next as Record<string, unknown>;
      for (const key in then) if (then[key] !== now[key]) return true;
      for (const key in now) if (!(key in then)) return true;
      return false;
    }
    render(props: P) {
      return render(props);
    }
  }
  (Memo as { displayName?: string }).displayName = `memo(${render.name})`;
  return Memo;
}
