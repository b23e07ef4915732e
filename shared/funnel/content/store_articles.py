"""Data access of the content area's clusters, articles and generated images (``article_clusters``,
``articles``, ``generated_images``).

The rules (archived articles, sanitising, publishing to WordPress, audit) stay in ``service`` and the pipeline
steps. Rows are dict rows shaped like the routes' response models (``models.Cluster``, ``Article``,
``ArticleImage``).
"""
from __future__ import annotations

from typing import Any

from funnel.content.store_rows import delete_by_id, insert_row, select_by_id, update_by_id
from funnel.db import Connection, Row, fetch_one
from funnel.platform.pagination import Page, keyset_page

CLUSTER_COLUMNS = "id, product_id, run_id, pillar_keyword, status, created_at"
ARTICLE_COLUMNS = ("id, cluster_id, position, keyword, outline, title, content, meta_description, article_type, "
                   "status, wp_post_id, wp_status, wp_link, wp_media_id, published_at, created_at, updated_at")
IMAGE_COLUMNS = "id, article_id, prompt, image_url, storage_path, generation_time_ms, cost_usd, created_at"


# ---------------------------------------------------------------- clusters
def insert_cluster(conn: Connection, product_id: str, run_id: str, pillar_keyword: str) -> Row:
    """A cluster the run is generating."""
    return insert_row(conn, "article_clusters", {"product_id": product_id, "run_id": run_id,
                                                 "pillar_keyword": pillar_keyword, "status": "generating"},
                      CLUSTER_COLUMNS)


def get_cluster(conn: Connection, cluster_id: str) -> Row | None:
    return select_by_id(conn, "article_clusters", CLUSTER_COLUMNS, cluster_id)


def list_clusters(conn: Connection, cursor: str | None, limit: int, product_id: str | None) -> Page:
    return keyset_page(conn, table="article_clusters", columns=CLUSTER_COLUMNS, cursor=cursor, limit=limit,
                       filters={"product_id": product_id})


def complete_clusters_of_run(conn: Connection, run_id: str) -> None:
    conn.execute("UPDATE article_clusters SET status = 'completed' WHERE run_id = %s", (run_id,))


def delete_cluster(conn: Connection, cluster_id: str) -> bool:
    return delete_by_id(conn, "article_clusters", cluster_id)


# ---------------------------------------------------------------- articles
def insert_article(conn: Connection, *, cluster_id: str, position: int, keyword: str, outline: list[str],
                   title: str, article_type: str) -> Row:
    return insert_row(conn, "articles", {"cluster_id": cluster_id, "position": position, "keyword": keyword,
                                         "outline": outline, "title": title, "article_type": article_type},
                      ARTICLE_COLUMNS)


def get_article(conn: Connection, article_id: str, *, for_update: bool = False) -> Row | None:
    return select_by_id(conn, "articles", ARTICLE_COLUMNS, article_id, for_update=for_update)


def articles_of_cluster(conn: Connection, cluster_id: str) -> list[Row]:
    """By position."""
    return conn.execute(f"SELECT {ARTICLE_COLUMNS} FROM articles WHERE cluster_id = %s ORDER BY position",
                        (cluster_id,)).fetchall()


def list_articles(conn: Connection, cursor: str | None, limit: int, cluster_id: str | None,
                  status: str | None) -> Page:
    return keyset_page(conn, table="articles", columns=ARTICLE_COLUMNS, cursor=cursor, limit=limit,
                       filters={"cluster_id": cluster_id, "status": status})


def update_article(conn: Connection, article_id: str, changes: dict[str, Any]) -> Row | None:
    return update_by_id(conn, "articles", ARTICLE_COLUMNS, article_id, changes)


def stamp_first_publication(conn: Connection, article_id: str) -> Row | None:
    """Set ``published_at`` unless it is set (it is kept through unpublishing)."""
    return conn.execute(f"UPDATE articles SET published_at = coalesce(published_at, now()) WHERE id = %s "
                        f"RETURNING {ARTICLE_COLUMNS}", (article_id,)).fetchone()


def set_media_id(conn: Connection, article_id: str, wp_media_id: int) -> None:
    conn.execute("UPDATE articles SET wp_media_id = %s WHERE id = %s", (wp_media_id, article_id))


def site_of_article(conn: Connection, article_id: str) -> Row | None:
    """``site_id`` of the article's product (null when it has none); None when the article is not found."""
    return conn.execute("SELECT p.site_id FROM articles a JOIN article_clusters c ON c.id = a.cluster_id "
                        "JOIN products p ON p.id = c.product_id WHERE a.id = %s", (article_id,)).fetchone()


def publication_counts(conn: Connection, run_id: str) -> Row:
    """``published`` (articles with a WordPress post) and ``total``, over the clusters the run planned."""
    return fetch_one(conn.execute(
        "SELECT count(*) FILTER (WHERE a.wp_post_id IS NOT NULL) AS published, count(*) AS total "
        "FROM articles a JOIN article_clusters c ON c.id = a.cluster_id WHERE c.run_id = %s", (run_id,)))


# ---------------------------------------------------------------- images
def insert_image(conn: Connection, *, article_id: str, prompt: str, storage_path: str, generation_time_ms: int,
                 cost_usd: float) -> Row:
    return insert_row(conn, "generated_images", {"article_id": article_id, "prompt": prompt,
                                                 "storage_path": storage_path, "generation_time_ms": generation_time_ms,
                                                 "cost_usd": cost_usd}, IMAGE_COLUMNS)


def get_image(conn: Connection, image_id: str) -> Row | None:
    return select_by_id(conn, "generated_images", IMAGE_COLUMNS, image_id)


def latest_image_of_article(conn: Connection, article_id: str) -> Row | None:
    return conn.execute(f"SELECT {IMAGE_COLUMNS} FROM generated_images WHERE article_id = %s "
                        f"ORDER BY created_at DESC LIMIT 1", (article_id,)).fetchone()


def list_images(conn: Connection, cursor: str | None, limit: int, article_id: str | None) -> Page:
    return keyset_page(conn, table="generated_images", columns=IMAGE_COLUMNS, cursor=cursor, limit=limit,
                       filters={"article_id": article_id})


def set_image_url(conn: Connection, image_id: str, image_url: str | None) -> None:
    conn.execute("UPDATE generated_images SET image_url = %s WHERE id = %s", (image_url, image_id))


def delete_images_of_article(conn: Connection, article_id: str) -> None:
    conn.execute("DELETE FROM generated_images WHERE article_id = %s", (article_id,))


def delete_image(conn: Connection, image_id: str) -> bool:
    return delete_by_id(conn, "generated_images", image_id)
