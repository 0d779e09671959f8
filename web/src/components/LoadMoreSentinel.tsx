import { Button, Center } from '@mantine/core';
import { useEffect, useRef } from 'react';

/**
 * The end of an infinitely scrolling list: loads the next page when it scrolls into view (within
 * 400 px), and is also a "Load more" button for keyboards and browsers without
 * IntersectionObserver.
 */
export function LoadMoreSentinel({
  hasMore,
  loading,
  onLoadMore,
}: {
  hasMore: boolean;
  loading: boolean;
  onLoadMore: () => void;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const latest = useRef({ hasMore, loading, onLoadMore });
  latest.current = { hasMore, loading, onLoadMore };

  useEffect(() => {
    const el = ref.current;
    if (!el || typeof IntersectionObserver === 'undefined') return;
    const observer = new IntersectionObserver(
      (entries) => {
        const { hasMore: more, loading: busy, onLoadMore: load } = latest.current;
        if (entries.some((e) => e.isIntersecting) && more && !busy) load();
      },
      { rootMargin: '400px 0px' },
    );
    observer.observe(el);
    return () => observer.disconnect();
  }, [hasMore]);

  if (!hasMore) return null;
  return (
    <Center py="sm" ref={ref} data-testid="load-more-sentinel">
      <Button variant="light" onClick={onLoadMore} loading={loading}>
        Load more
      </Button>
    </Center>
  );
}
